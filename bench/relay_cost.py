"""What a relay between cluster nodes costs per forwarded packet, at each of its two ends.

    python -m bench.relay_cost [--packets 20000]

A relay is one more player on the origin (an SRTP protect and a send per packet, whatever the
number of players behind it) and one more publisher on the edge (a receive, an SRTP unprotect
and the publisher's per-packet work). This sends real RTP through the real PlainSession at both
ends over a 127.0.0.1 socket pair, under per-relay SRTP keys and plain for comparison, and
prints CPU microseconds per packet for each end. An edge serving P players costs its origin one
relay end instead of P players, which is why adding a node adds capacity: the origin's cost per
packet grows by one player-equivalent per node, not per remote player.
"""

from __future__ import annotations

import argparse
import socket
import struct
import time
from collections.abc import Sequence
from typing import cast

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from sfu.media import VIDEO, Codec, TrackSpec
from sfu.routing.relay import PlainSession, mirrored, relay_keys
from sfu.routing.router import PLAY, PUBLISH
from sfu.session.peer import PeerSession

PAYLOAD_BYTES = 1100
VP8 = Codec("VP8", 96, 90000, rtcp_fb=("nack", "nack pli", "ccm fir"))
BATCH = 64  # packets sent before the edge drains its socket


def rtp_packet(sequence: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, 96, sequence & 0xFFFF, sequence * 3000, 0x1234)
    return header + b"\x10" + bytes(PAYLOAD_BYTES)  # a VP8 descriptor, then payload


def measure(packets: int, encrypted: bool) -> tuple[float, float]:
    """(origin µs, edge µs) of CPU per packet relayed."""
    edge_media = MediaServer(MediaConfig())
    tracks = [TrackSpec("0", VIDEO, [VP8])]
    origin_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    edge_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (origin_sock, edge_sock):
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    edge_addr, origin_addr = edge_sock.getsockname(), origin_sock.getsockname()
    keys = relay_keys() if encrypted else None
    now = time.monotonic()
    out = PlainSession(
        PLAY, "s", tracks, edge_addr, origin_sock.sendto, now, mirrored(keys) if keys else None
    )
    into = PlainSession(PUBLISH, "s", tracks, origin_addr, edge_sock.sendto, now, keys)
    edge_media.router.add_publisher("s", cast(PeerSession, into))
    into.handler.on_connected(now)  # type: ignore[union-attr]
    origin_cpu = edge_cpu = 0.0
    packets -= packets % BATCH
    for start in range(0, packets, BATCH):
        plain = [rtp_packet(n) for n in range(start, start + BATCH)]
        began = time.process_time()
        for packet in plain:
            origin_sock.sendto(out.srtp.protect_rtp(packet), edge_addr)
        middle = time.process_time()
        for _ in plain:
            into.handle_srtp(edge_sock.recv(2048), now)
        edge_cpu += time.process_time() - middle
        origin_cpu += middle - began
    received = sum(t.packets for t in edge_media.router.streams["s"].publisher.tracks)
    assert received == packets, f"the edge took {received} of {packets} packets"
    origin_sock.close()
    edge_sock.close()
    return origin_cpu / packets * 1e6, edge_cpu / packets * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=20000)
    args = parser.parse_args(argv)
    print(f"{'relay':<8} {'origin µs/pkt':>14} {'edge µs/pkt':>12} {'both':>8}")
    for encrypted in (False, True):
        origin, edge = measure(args.packets, encrypted)
        name = "SRTP" if encrypted else "plain"
        print(f"{name:<8} {origin:>14.2f} {edge:>12.2f} {origin + edge:>8.2f}")


if __name__ == "__main__":
    main()
