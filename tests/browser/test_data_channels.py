"""Chromium on both ends of a stream's data channel: a WHIP publisher's 1,000 ordered messages
reach a WHEP player intact, through the server's SCTP relay.

The pages carry no data UI, so each side is a few lines of WebRTC in the page (same origin as
the server) rather than the project's publish and play pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)

MESSAGES = 1000

# Publish fake camera and microphone with a "chat" channel over WHIP; resolves once it is open.
PUBLISH = """async (stream) => {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection();
  media.getTracks().forEach((track) => pc.addTrack(track, media));
  const chat = pc.createDataChannel("chat");
  await pc.setLocalDescription(await pc.createOffer());
  const reply = await fetch(`/whip/${stream}`, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (reply.status !== 201) throw new Error(`WHIP ${reply.status}: ${await reply.text()}`);
  await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
  await new Promise((resolve) => { chat.onopen = resolve; });
  window.publisher = { pc, chat };
  return chat.readyState;
}"""

# Play over WHEP, offering data with a pre-negotiated channel of its own; keep what arrives.
PLAY = """async (stream) => {
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
  const reply = await fetch(`/whep/${stream}`, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (reply.status !== 201) throw new Error(`WHEP ${reply.status}: ${await reply.text()}`);
  await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
  return true;
}"""


SEND = "(n) => { for (let i = 0; i < n; i++) window.publisher.chat.send(`m${i}`); }"


def relay_messages(browsing: Browsing, publisher: Any, player: Any, stream: str) -> None:
    """Publish a channel from `publisher`, play from `player`, and check that the player gets
    the channel under its label and every message in order."""
    assert publisher.evaluate(PUBLISH, stream) == "open"
    assert player.evaluate(PLAY, stream)
    browsing.wait_for(
        "the channel at the player",
        lambda: player.evaluate("() => window.player.labels"),
        lambda labels: labels == ["chat"],
        20,
    )
    publisher.evaluate(SEND, MESSAGES)
    browsing.wait_for(
        f"{MESSAGES} messages at the player",
        lambda: player.evaluate("() => window.player.messages.length"),
        lambda count: count >= MESSAGES,
        30,
    )
    assert player.evaluate("() => window.player.messages") == [f"m{i}" for i in range(MESSAGES)]


def test_chromium_publisher_channel_reaches_a_chromium_player(
    browsing: Browsing, sfu_server: Any
) -> None:
    base = sfu_server.http_url
    publisher = browsing.open(f"{base}/publish.html", "publisher")
    player = browsing.open(f"{base}/publish.html", "player")  # a page of the origin, unused
    relay_messages(browsing, publisher, player, "live/chat")
