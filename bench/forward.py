"""The forwarding hot path alone: CPU per packet per player, without the load generator.

    python -m bench.forward [--players 10 100 500] [--packets 2000]

One publisher track fans packets out to N players through the real code (PublisherTrack.forward,
per-player rewrite, SRTP protection with keys from a real DTLS handshake, sends to a 127.0.0.1
sink nobody reads), on both paths side by side: the pure-Python loop (pylibsrtp, one sendto per
player) and the compiled fan-out (sfu._fanout: OpenSSL, one sendmmsg per packet). It prints
microseconds per forwarded packet (one packet to one player) for each SRTP profile, with and
without the per-player header extensions, and the ratio. End-to-end runs (bench.load) cost more
per packet on loopback, because each delivery also wakes the receiving process; this separates
the server's own work from that.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from collections.abc import Sequence
from types import SimpleNamespace

from sfu import fastpath, rtp
from sfu.dtls import Certificate, DtlsEndpoint, SrtpKeys
from sfu.media import VIDEO, Codec, TrackSpec
from sfu.simulcast import Vp8Continuity
from sfu.srtp import SrtpContext
from sfu.tracks import PublisherTrack, SubscriberTrack

PROFILES = {"AES-GCM": b"SRTP_AEAD_AES_128_GCM", "AES-CM-SHA1": b"SRTP_AES128_CM_SHA1_80"}
PAYLOAD_BYTES = 1100
# Sources: one single-layer track, a simulcast layer whose players have not switched (the
# compiled path still sends for them), or one whose players have (VP8 ids rewritten in Python).
SOURCES = ("single", "simulcast", "switched")
# A VP8 keyframe start with picture ID and TL0PICIDX, then a 1280x720 frame header.
_VP8_LAYER_START = bytes([0x90, 0xC0, 0x81, 0x23, 0x05, 0x50, 0x2D, 0x00, 0x9D, 0x01, 0x2A])
_VP8_LAYER_START += (1280).to_bytes(2, "little") + (720).to_bytes(2, "little")
MAX_HANDSHAKE_ROUNDS = 10


def server_keys(profile: bytes) -> SrtpKeys:
    """SRTP keys from a real in-memory DTLS handshake."""
    cert = Certificate.generate()
    fingerprints = [("sha-256", cert.fingerprint)]
    server = DtlsEndpoint(cert, is_server=True, remote_fingerprints=fingerprints)
    client = DtlsEndpoint(
        cert, is_server=False, remote_fingerprints=fingerprints, srtp_profiles=profile
    )
    to_server = client.start(0.0)
    for _ in range(MAX_HANDSHAKE_ROUNDS):
        to_client = [out for datagram in to_server for out in server.receive(datagram, 0.0)]
        to_server = [out for datagram in to_client for out in client.receive(datagram, 0.0)]
        if server.keys is not None and not to_server:
            break
    if server.keys is None:
        raise RuntimeError(f"DTLS handshake did not complete: {server.failure}")
    return server.keys


def measure(
    players: int, keys: SrtpKeys, extensions: bool, packets: int, source_kind: str = "single"
) -> float:
    """CPU seconds per forwarded packet (one packet to one player)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        codec = Codec("VP8", 96, 90000, rtcp_fb=("nack",))
        rid = None if source_kind == "single" else "f"
        spec = TrackSpec("0", VIDEO, [codec], ssrc=1, rids=(rid,) if rid else ())
        source = PublisherTrack(spec, keyframe_interval=0.5, rid=rid)
        ids = {1: rtp.MID_URI, 2: rtp.ABS_SEND_TIME_URI, 3: rtp.TRANSPORT_CC_URI}
        for _ in range(players):
            session = SimpleNamespace(
                addr=sink.getsockname(),
                srtp=SrtpContext(keys),
                dtls=SimpleNamespace(keys=keys),
                transport_seq=0,
            )
            spec = TrackSpec("0", VIDEO, [codec], extensions=ids if extensions else {})
            player = SubscriberTrack(session, spec)  # type: ignore[arg-type]
            if source_kind == "switched":
                player.vp8 = Vp8Continuity()
                player.vp8.picture_offset = 7  # as after a switch: ids rewritten
            player.attach(source, codec, sender.sendto)
        if source_kind == "single":
            body = bytes([0x10, 0x00]) + os.urandom(PAYLOAD_BYTES)  # a VP8 keyframe start
        else:
            body = _VP8_LAYER_START + os.urandom(PAYLOAD_BYTES - 13)
        stream = [
            struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, 1) + body
            for seq in range(packets)
        ]
        started = time.process_time()
        for index, packet in enumerate(stream):
            source.forward(packet, index / 60)
        spent = time.process_time() - started
        if source.send_failures:
            print(f"  ({source.send_failures} sends failed: socket buffer full)")
        return spent / (packets * players)
    finally:
        sink.close()
        sender.close()


def measure_python(
    players: int, keys: SrtpKeys, extensions: bool, packets: int, source_kind: str = "single"
) -> float:
    """`measure` with the compiled fan-out switched off, as SFU_NO_EXTENSION=1 would."""
    compiled, fastpath.fanout = fastpath.fanout, None
    try:
        return measure(players, keys, extensions, packets, source_kind)
    finally:
        fastpath.fanout = compiled


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument(
        "--source", choices=SOURCES, default="single", help="single-layer or simulcast source"
    )
    args = parser.parse_args(argv)
    compiled = fastpath.fanout is not None
    if not compiled:
        print(f"compiled path unavailable: {fastpath.WHY}; measuring the Python path only")
    print(
        f"{'profile':<12} {'extensions':<10} {'players':>7} "
        f"{'python µs':>10} {'compiled µs':>12} {'ratio':>6}"
    )
    for name, profile in PROFILES.items():
        keys = server_keys(profile)
        for extensions in (False, True):
            for players in args.players:
                python = measure_python(players, keys, extensions, args.packets, args.source)
                line = (
                    f"{name:<12} {'yes' if extensions else 'no':<10} {players:>7} "
                    f"{python * 1e6:>10.2f}"
                )
                if compiled:
                    fast = measure(players, keys, extensions, args.packets, args.source)
                    line += f" {fast * 1e6:>12.2f} {python / fast:>5.1f}x"
                print(line)


if __name__ == "__main__":
    main()
