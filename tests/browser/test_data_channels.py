"""Chromium on both ends of a stream's data channel: a WHIP publisher's 1,000 ordered messages
reach a WHEP player intact, through the server's SCTP relay.

The pages carry no data UI, so each side is a few lines of WebRTC in the page (same origin as
the server) rather than the project's publish and play pages.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

MESSAGES = 1000

# Publish fake camera and microphone with a "chat" channel over WHIP; resolves once it is open.
PUBLISH = """async (count) => {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection();
  media.getTracks().forEach((track) => pc.addTrack(track, media));
  const chat = pc.createDataChannel("chat");
  await pc.setLocalDescription(await pc.createOffer());
  const reply = await fetch("/whip/live/chat", {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (reply.status !== 201) throw new Error(`WHIP ${reply.status}: ${await reply.text()}`);
  await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
  await new Promise((resolve) => { chat.onopen = resolve; });
  window.publisher = { pc, chat, count };
  return chat.readyState;
}"""

# Play over WHEP, offering data with a pre-negotiated channel of its own; keep what arrives.
PLAY = """async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.createDataChannel("offer", { negotiated: true, id: 0 });
  window.player = { pc, labels: [], messages: [] };
  pc.ondatachannel = ({ channel }) => {
    window.player.labels.push(channel.label);
    channel.onmessage = ({ data }) => window.player.messages.push(data);
  };
  await pc.setLocalDescription(await pc.createOffer());
  const reply = await fetch("/whep/live/chat", {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (reply.status !== 201) throw new Error(`WHEP ${reply.status}: ${await reply.text()}`);
  await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
  return true;
}"""


def test_chromium_publisher_channel_reaches_a_chromium_player(
    browser: Any, sfu_server: Any
) -> None:
    contexts = [browser.new_context(permissions=["camera", "microphone"]) for _ in range(2)]
    try:
        publisher, player = (context.new_page() for context in contexts)
        for page in (publisher, player):
            page.goto(f"{sfu_server.http_url}/publish.html", wait_until="load")
        assert publisher.evaluate(PUBLISH, MESSAGES) == "open"
        assert player.evaluate(PLAY)
        player.wait_for_function("() => window.player.labels.length > 0", timeout=20_000)
        assert player.evaluate("() => window.player.labels") == ["chat"]
        publisher.evaluate(
            "(n) => { for (let i = 0; i < n; i++) window.publisher.chat.send(`m${i}`); }",
            MESSAGES,
        )
        player.wait_for_function(
            f"() => window.player.messages.length >= {MESSAGES}", timeout=30_000
        )
        received = player.evaluate("() => window.player.messages")
        assert received == [f"m{i}" for i in range(MESSAGES)]
    finally:
        for context in contexts:
            context.close()
