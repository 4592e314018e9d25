"""One packet to a list of player tracks: the compiled fan-out first, then the Python loop
for the players it left (waiting for a keyframe, or without a socket or SRTP sender the
extension can use; every player when the extension is not built).

Apart from publisher_track (which decides what each packet is and to whom it goes) so that
the loop, long for speed, has a module of its own.
"""

from __future__ import annotations

from typing import Protocol

import pylibsrtp

from sfu.protocol import fastpath
from sfu.protocol.simulcast import vp8_ids
from sfu.routing.rewrite import REWRITE, extend_for_player
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.wire import rtp
from sfu.wire.vp9 import Vp9Descriptor


class Forwarder(Protocol):
    """What the fan-out reads of the track it forwards for (a publisher_track.PublisherTrack,
    which imports this module)."""

    payload_rule: int
    send_failures: int
    rid: str | None
    vp8_layer: bool

    def starts_keyframe(self, packet: bytes) -> bool: ...


def fan_out(
    track: Forwarder,
    packet: bytes,
    subscribers: list[SubscriberTrack],
    svc: Vp9Descriptor | None,
    seq: int,
    ts: int,
    now: float,
) -> int:
    """Rewrite and send `packet` (sequence number `seq`, timestamp `ts`, VP9 descriptor
    `svc` if any) to each of `subscribers`, as `track` forwards it; how many were sent."""
    fanout = fastpath.fanout
    sent = 0
    if fanout is not None:
        sent, dropped, left = fanout(packet, subscribers, now, track.payload_rule)
        track.send_failures += dropped
        if not left:
            return sent
        # Players still waiting for a keyframe, and any without a socket or SRTP sender
        # the extension can use, go through the loop below.
        subscribers = [sub for sub in subscribers if not sub.started or sub._fd < 0]
    packet = rtp.strip_extensions(packet)  # checked by forward(); the loop starts bare
    buf = bytearray(packet)
    marker = packet[1] & 0x80
    payload_start = 0
    if track.rid is not None:
        try:
            payload_start = rtp.header_length(packet)
        except rtp.RtpError:
            return sent
    ids = vp8_ids(packet, payload_start) if track.vp8_layer else None
    keyframe: bool | None = None
    pack_into = REWRITE.pack_into
    # One copy with header extensions per extension layout, shared by the players using it.
    with_extensions: dict[tuple, tuple[bytearray, int]] | None = None
    for sub in subscribers:
        if not sub.started:
            if keyframe is None:
                keyframe = track.starts_keyframe(packet)
            if not keyframe:
                continue
            sub.start(seq, ts, now)
        if ids is not None:
            max_temporal = sub.max_temporal
            if max_temporal is not None and ids.tid > max_temporal:
                sub.skip_packet(seq)
                continue
        elif svc is not None and not sub.svc_admit(svc, ts):
            sub.skip_packet(seq)
            continue
        layout = sub.extension_layout
        if layout is None:
            target = buf
        else:
            if with_extensions is None:
                with_extensions = {}
            entry = with_extensions.get(layout)
            if entry is None:
                entry = with_extensions[layout] = extend_for_player(packet, layout, now)
            target, transport_seq_at = entry
            if transport_seq_at:
                session = sub.session
                transport_seq = session.transport_seq
                session.transport_seq = (transport_seq + 1) & 0xFFFF
                target[transport_seq_at] = transport_seq >> 8
                target[transport_seq_at + 1] = transport_seq & 0xFF
        pack_into(
            target,
            1,
            marker | sub.payload_type,
            (seq + sub.seq_offset) & 0xFFFF,
            (ts + sub.ts_offset) & 0xFFFFFFFF,
            sub.ssrc,
        )
        if ids is not None:  # from the publisher's ids, as the buffer is shared
            sub.continue_ids(target, len(target) - len(packet), ids)
        elif svc is not None and sub.svc_marker(svc):
            target[1] |= 0x80  # the end of the picture as this player gets it
        # Sending is inlined: one Python frame less per packet and player is ~5% of a core.
        addr = sub.session.addr
        if addr is None:
            continue
        sub.packets += 1
        sub.bytes += len(target)
        try:
            sub._sendto(sub._protect(target), addr)
            sent += 1
        except (OSError, pylibsrtp.Error):
            track.send_failures += 1
    return sent
