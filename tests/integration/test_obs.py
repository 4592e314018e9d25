"""An OBS-style WHIP publish, end to end: OBS's SDP, a Bearer token, real ICE, DTLS and SRTP.

aiortc cannot send OBS's exact offer (ICE credentials only at session level, `OPUS` in
capitals, `a=group:LS`), so the media side is the codec-free load client of bench/, whose
sans-IO ICE agent, DTLS client and SRTP are the project's own, speaking that offer.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp

from bench.client import Publisher, Target
from bench.launcher import start_server, stop_server
from sfu.protocol.certificate import Certificate

OBS_OFFER = Path(__file__).resolve().parent.parent / "unit" / "offers" / "obs_publish.sdp"
TOKEN = "obs-stream-key"


class ObsPublisher(Publisher):
    """bench's synthetic publisher, offering exactly what OBS offers (with its own keys)."""

    def offer(self) -> str:
        text = OBS_OFFER.read_text()
        text = re.sub(r"a=ice-ufrag:\S+", f"a=ice-ufrag:{self.ufrag}", text)
        text = re.sub(r"a=ice-pwd:\S+", f"a=ice-pwd:{self.pwd}", text)
        text = re.sub(
            r"a=fingerprint:\S+ \S+", f"a=fingerprint:sha-256 {self.certificate.fingerprint}", text
        )
        text = text.replace("opus/48000/2", "OPUS/48000/2")  # as OBS writes it
        text = text.replace("2853119873", str(self.media.audio_ssrc))
        text = text.replace("2853119874", str(self.media.video_ssrc))
        return text.replace("\r\n", "\n").replace("\n", "\r\n")


async def test_obs_offer_publishes_with_a_bearer_token(tmp_path) -> None:
    server = start_server(tmp_path, "--auth-token", TOKEN)
    base = server.http_url
    try:
        async with aiohttp.ClientSession() as http:
            obs = ObsPublisher(0, Target(base, "whip", "live/obs"), Certificate.generate())
            offer = obs.offer()
            assert "OPUS/48000/2" in offer and "a=group:LS 0 1" in offer
            assert offer.index("a=ice-ufrag") < offer.index("m=audio")  # session level only
            headers = {"Content-Type": "application/sdp"}
            async with http.post(f"{base}/whip/live/obs", data=offer, headers=headers) as response:
                assert response.status == 401
            headers["Authorization"] = f"Bearer {TOKEN}"
            async with http.post(f"{base}/whip/live/obs", data=offer, headers=headers) as response:
                answer = await response.text()
                assert response.status == 201, answer
                resource = base + response.headers["Location"]
            assert "a=ice-lite" in answer
            assert answer.count("a=recvonly") == 2
            obs.take_answer(answer)
            try:
                await obs.handshake(timeout=15)
                stream = {}
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    stats = f"{base}/api/v1/streams"
                    bearer = {"Authorization": f"Bearer {TOKEN}"}  # stats need it with auth on
                    async with http.get(stats, headers=bearer) as response:
                        streams = (await response.json())["streams"]
                    stream = streams[0] if streams else {}
                    if stream.get("packets_in", 0) > 50:
                        break
                    await asyncio.sleep(0.2)
                assert stream["name"] == "live/obs"
                assert stream["publishing"] and stream["publisher_state"] == "connected"
                assert {k: v.lower() for k, v in stream["codecs"].items()} == {
                    "audio": "opus",
                    "video": "h264",
                }
                assert stream["packets_in"] > 50  # SRTP from the OBS-style session, decrypted
                async with http.delete(resource) as response:
                    assert response.status == 401
                async with http.delete(resource, headers=headers) as response:
                    assert response.status == 200
            finally:
                obs.stop()
                obs.close()
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()
    assert TOKEN not in server.log()
