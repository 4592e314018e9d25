"""RTCP per hop: NACK/RTX repair for lossy players, honest Receiver Reports to publishers."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from tests.integration.peers import close_all, play, publish
from tests.integration.relay import Relay, is_rtp, rtp_sequence

RUN_SECONDS = 8.0


async def stream_stats(http: aiohttp.ClientSession, base: str, name: str) -> dict:
    async with http.get(f"{base}/api/v1/streams") as response:
        streams = (await response.json())["streams"]
    return next(s for s in streams if s["name"] == name)


async def test_lossy_player_keeps_frame_rate_with_retransmissions(sfu_server) -> None:
    """5% of the server's RTP to one player is dropped; NACK + RTX keep it decoding."""
    chance = random.Random(5)
    relay = Relay(
        ("127.0.0.1", sfu_server.udp_port),
        drop_to_client=lambda data: is_rtp(data) and chance.random() < 0.05,
    )
    relay_port = await relay.start()
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, base, "live/lossy")
        clean = await play(http, base, "live/lossy")
        lossy = await play(http, base, "live/lossy", relay_port=relay_port)
        try:
            assert await clean.wait_for("video", 10, timeout=20)
            assert await lossy.wait_for("video", 10, timeout=20)
            start_clean, start_lossy = clean.frames["video"], lossy.frames["video"]
            await asyncio.sleep(RUN_SECONDS)
            clean_frames = clean.frames["video"] - start_clean
            lossy_frames = lossy.frames["video"] - start_lossy
            stats = await stream_stats(http, base, "live/lossy")
        finally:
            await close_all(publisher, clean, lossy)
            relay.close()
    assert relay.dropped["to_client"] > 0
    assert clean_frames > 0
    assert lossy_frames >= 0.9 * clean_frames, (lossy_frames, clean_frames)
    video_tracks = [
        track
        for player in stats["player_sessions"]
        for track in player["tracks"]
        if track["kind"] == "video"
    ]
    assert max(t["nacks_received"] for t in video_tracks) > 0
    assert max(t["retransmissions"] for t in video_tracks) > 0


async def publisher_reports(publisher) -> tuple[list, dict]:
    """What aiortc's senders know: the remote-inbound-rtp stats the Receiver Reports gave
    them, and their own outbound-rtp stats by kind."""
    remote: list = []
    local: dict = {}
    for sender in publisher.pc.getSenders():
        report = await sender.getStats()
        remote += [s for s in report.values() if s.type == "remote-inbound-rtp"]
        local.update({s.kind: s for s in report.values() if s.type == "outbound-rtp"})
    return remote, local


def loss_is_reported(remote: list, local: dict) -> bool:
    """Both kinds have a report, each counting 5-15 % of what was sent as lost."""
    # aiortc labels remote-inbound-rtp with the reporter's SSRC, so match by kind.
    return len(remote) == 2 and all(
        0.05 * local[s.kind].packetsSent <= s.packetsLost <= 0.15 * local[s.kind].packetsSent
        for s in remote
    )


async def test_publisher_receives_reports_with_its_real_loss(sfu_server) -> None:
    """Every tenth RTP sequence number from the publisher never arrives, retransmissions too:
    the Receiver Reports it gets back say so, and the server asks for the video with NACKs."""
    relay = Relay(
        ("127.0.0.1", sfu_server.udp_port),
        drop_to_server=lambda data: is_rtp(data) and rtp_sequence(data) % 10 == 0,
    )
    relay_port = await relay.start()
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, base, "live/rr", relay_port=relay_port)
        try:
            deadline = time.monotonic() + 4 * RUN_SECONDS
            while True:  # until the reports say so, or the deadline
                await asyncio.sleep(0.5)
                remote, local = await publisher_reports(publisher)
                stats = await stream_stats(http, base, "live/rr")
                video = next((t for t in stats["tracks"] if t["kind"] == "video"), {})
                nacked = video.get("nacks_sent", 0) > 0 and video.get("packets_lost", 0) > 0
                if (loss_is_reported(remote, local) and nacked) or time.monotonic() > deadline:
                    break
        finally:
            await close_all(publisher)
            relay.close()
    assert len(remote) == 2, remote
    for stat in remote:
        sent = local[stat.kind].packetsSent
        assert 0.05 * sent <= stat.packetsLost <= 0.15 * sent, (stat, sent)
    assert video.get("nacks_sent", 0) > 0, video
    assert video.get("packets_lost", 0) > 0, video
