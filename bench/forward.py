"""The forwarding hot path alone: CPU per packet per player, without the load generator.

    python -m bench.forward [--players 10 100 500] [--packets 2000]

One publisher track fans packets out to N players through the real code (PublisherTrack.forward,
per-player rewrite, SRTP protection with keys from a real DTLS handshake, sends to a 127.0.0.1
sink nobody reads), on both paths side by side: the pure-Python loop (pylibsrtp, one sendto per
player) and the compiled fan-out (sfu.protocol._fanout: SRTP on an AES engine, one sendmmsg per
packet), by default on OpenSSL's EVP and on the best engine this CPU has. It prints
microseconds per forwarded packet (one packet to one player) for each SRTP profile, with and
without the per-player header extensions, and the ratio. End-to-end runs (bench.load) cost more
per packet on loopback, because each delivery also wakes the receiving process; this separates
the server's own work from that.

Each is measured twice: from a single-layer track, and from a VP8 simulcast layer whose players
have all switched layers (their picture IDs and TL0PICIDX continued per player), one in four of
them also held to temporal layers 0-1 (half the frames of an L1T3 stream left out). The
simulcast figure is per packet sent; "sim/single" is its ratio to the single-layer one. And
a third time from a VP9 L3T3_KEY stream (one RTP stream, three spatial layers), whose players
have spatial and temporal targets (all layers; spatial 0-1; spatial 0; all spatial layers at
temporal 0-1), per packet sent; "svc/sim" is its ratio to the VP8 simulcast figure (issue 27:
within 20 %). The three are measured in turn, `--rounds` times, and the fastest run of each
is shown.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import SimpleNamespace

from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath
from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, SrtpKeys
from sfu.protocol.srtp import SrtpContext
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.wire import rtp

PROFILES = {"AES-GCM": b"SRTP_AEAD_AES_128_GCM", "AES-CM-SHA1": b"SRTP_AES128_CM_SHA1_80"}
PAYLOAD_BYTES = 1100
# The temporal layer of each frame in a four-frame cycle (L1T3), one packet a frame here.
TEMPORAL_PATTERN = (0, 2, 1, 2)
LIMITED_EVERY = 4  # one simulcast player in this many gets temporal layers 0 and 1 only
MAX_HANDSHAKE_ROUNDS = 10
SINGLE, SIMULCAST, SVC = "single", "simulcast", "svc"
# The (spatial, temporal) targets of the SVC players, in turn.
SVC_TARGETS = ((2, 7), (1, 7), (0, 7), (2, 1))
SPATIAL_LAYERS = 3


class Peer(fastpath.TransportState):  # type: ignore[misc, valid-type]
    """A player's session as the fan-out sees a PeerSession: addr and transport_seq on the
    same base (flat in C on the compiled path), the rest as plain attributes."""


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


def vp8_frame(index: int) -> bytes:
    """Frame `index` of a VP8 simulcast layer as Chromium starts it: a descriptor with 15-bit
    picture ID, TL0PICIDX and TID, then a frame header (frame 0: a 1280x720 keyframe)."""
    tid = 0 if index == 0 else TEMPORAL_PATTERN[index % len(TEMPORAL_PATTERN)]
    picture = (0x1234 + index) & 0x7FFF
    tl0 = (index // len(TEMPORAL_PATTERN)) & 0xFF
    descriptor = bytes([0x90, 0xE0, 0x80 | picture >> 8, picture & 0xFF, tl0, tid << 6])
    if index:
        return descriptor + bytes([0x31, 0x05, 0x00])
    size = (1280).to_bytes(2, "little") + (720).to_bytes(2, "little")
    return descriptor + bytes([0x50, 0x2D, 0x00, 0x9D, 0x01, 0x2A]) + size


def vp9_packet(index: int) -> bytes:
    """Packet `index` of a VP9 L3T3_KEY stream, one packet per layer frame: picture
    index // 3, spatial layer index % 3; non-flexible descriptor with picture ID, layer
    indices and TL0PICIDX (picture 0 a keyframe, with sizes), B and E set."""
    picture, sid = divmod(index, SPATIAL_LAYERS)
    tid = 0 if picture == 0 else TEMPORAL_PATTERN[picture % len(TEMPORAL_PATTERN)]
    key = picture == 0
    first = 0xA0 | 0x0C | (0 if key else 0x40) | (0x02 if key and sid == 0 else 0)
    picture_id = (0x1234 + picture) & 0x7FFF
    layers = tid << 5 | (0x10 if tid else 0) | sid << 1 | (1 if key and sid else 0)
    out = bytes([first, 0x80 | picture_id >> 8, picture_id & 0xFF, layers, picture & 0xFF])
    if key and sid == 0:
        sizes = ((320, 180), (640, 360), (1280, 720))
        out += bytes([(SPATIAL_LAYERS - 1) << 5 | 0x10])
        out += b"".join(w.to_bytes(2, "big") + h.to_bytes(2, "big") for w, h in sizes)
    return out


def track_with_players(
    keys: SrtpKeys,
    addresses: Sequence[tuple[str, int]],
    sender: socket.socket,
    *,
    extensions: bool = False,
    layering: str = SINGLE,
    engine: str | None = None,
) -> tuple[PublisherTrack, list[SubscriberTrack]]:
    """A publisher track and a player for each address, attached as the server attaches them
    (sending with `sender`); `engine` picks the compiled path's AES engine (None: the one the
    server would use)."""
    simulcast = layering == SIMULCAST
    codec = Codec("VP9" if layering == SVC else "VP8", 96, 90000, rtcp_fb=("nack",))
    rid = "f" if simulcast else None
    spec = TrackSpec("0", VIDEO, [codec], ssrc=1, rids=(rid,) if rid else ())
    source = PublisherTrack(spec, keyframe_interval=0.5, rid=rid)
    ids = {1: rtp.MID_URI, 2: rtp.ABS_SEND_TIME_URI, 3: rtp.TRANSPORT_CC_URI}
    players = []
    for index, address in enumerate(addresses):
        session = Peer()
        session.addr, session.transport_seq = address, 0
        session.srtp, session.dtls = SrtpContext(keys), SimpleNamespace(keys=keys)
        spec = TrackSpec("0", VIDEO, [codec], extensions=ids if extensions else {})
        player = SubscriberTrack(session, spec)  # type: ignore[arg-type]
        if engine is not None:  # attach keeps a sender it finds
            player._sender = fastpath.srtp_sender(keys, engine)
        if simulcast:  # as after a switch: every player's VP8 ids are its own
            player.picture_offset, player.tl0_offset = 7 + index, 3 + index
            if index % LIMITED_EVERY == 0:
                player.limit_temporal(1)
        if layering == SVC:
            player.target_spatial, player.target_temporal = SVC_TARGETS[index % len(SVC_TARGETS)]
        player.attach(source, codec, sender.sendto)
        players.append(player)
    return source, players


def packet_stream(
    packets: int, layering: str = SINGLE, payload: int = PAYLOAD_BYTES
) -> list[bytes]:
    """RTP packets as the publisher sends them: single-layer ones all keyframes (so players
    start at once), simulcast ones frames of an L1T3 VP8 layer, SVC ones VP9 L3T3_KEY."""
    body = os.urandom(payload)
    first = {SINGLE: lambda seq: bytes([0x10, 0x00]), SIMULCAST: vp8_frame, SVC: vp9_packet}
    return [
        struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, 1) + first[layering](seq) + body
        for seq in range(packets)
    ]


def measure(
    players: int,
    keys: SrtpKeys,
    extensions: bool,
    packets: int,
    layering: str = SINGLE,
    engine: str | None = None,
) -> float:
    """CPU seconds per forwarded packet (one packet sent to one player)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        source, subscribers = track_with_players(
            keys,
            [sink.getsockname()] * players,
            sender,
            extensions=extensions,
            layering=layering,
            engine=engine,
        )
        stream = packet_stream(packets, layering)
        started = time.process_time()
        for index, packet in enumerate(stream):
            source.forward(packet, index / 60)
        spent = time.process_time() - started
        if source.send_failures:
            print(f"  ({source.send_failures} sends failed: socket buffer full)")
        return spent / sum(player.packets for player in subscribers)
    finally:
        sink.close()
        sender.close()


def measure_python(
    players: int, keys: SrtpKeys, extensions: bool, packets: int, layering: str = SINGLE
) -> float:
    """`measure` with the compiled fan-out switched off, as SFU_NO_EXTENSION=1 would."""
    compiled, fastpath.fanout = fastpath.fanout, None
    try:
        return measure(players, keys, extensions, packets, layering)
    finally:
        fastpath.fanout = compiled


def fastest(run: Callable[[str], float], rounds: int) -> tuple[float, float, float]:
    """The least of `rounds` runs from a single-layer, a simulcast and an SVC source,
    measured in turn so that load from elsewhere on the machine falls on all alike."""
    runs: dict[str, list[float]] = {SINGLE: [], SIMULCAST: [], SVC: []}
    for _ in range(max(1, rounds)):
        for layering, times in runs.items():
            times.append(run(layering))
    return min(runs[SINGLE]), min(runs[SIMULCAST]), min(runs[SVC])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each, alternated; the fastest is shown"
    )
    parser.add_argument(
        "--engines",
        nargs="+",
        default=fastpath.AES_ENGINES[-1:] + fastpath.AES_ENGINES[:1],
        choices=fastpath.AES_ENGINES,
        help="the compiled path's AES engines to measure (default: openssl and the best)",
    )
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    args = parser.parse_args(argv)
    compiled = fastpath.fanout is not None
    if not compiled:
        print(f"compiled path unavailable: {fastpath.WHY}; measuring the Python path only")
    paths: list[tuple[str, Callable[..., float]]] = [("python", measure_python)]
    if compiled:
        engines = dict.fromkeys(args.engines)  # in order, once each
        paths += [(f"C {engine}", partial(measure, engine=engine)) for engine in engines]
    header = f"{'profile':<12} {'extensions':<10} {'players':>7}"
    for path, _ in paths:
        header += f" {path + ' µs':>12} {'simulcast':>9} {'sim/single':>10}"
        header += f" {'vp9 svc':>8} {'svc/sim':>8}"
    print(header + (f" {'python/' + paths[-1][0]:>15}" if compiled else ""))
    for name in args.profiles:
        profile = PROFILES[name]
        keys = server_keys(profile)
        for extensions in (False, True):
            for players in args.players:
                line = f"{name:<12} {'yes' if extensions else 'no':<10} {players:>7}"
                singles = []
                for _, run in paths:
                    single, simulcast, svc = fastest(
                        partial(run, players, keys, extensions, args.packets), args.rounds
                    )
                    singles.append(single)
                    line += f" {single * 1e6:>12.2f} {simulcast * 1e6:>9.2f}"
                    line += f" {simulcast / single:>9.2f}x"
                    line += f" {svc * 1e6:>8.2f} {svc / simulcast:>7.2f}x"
                if compiled:
                    line += f" {singles[0] / singles[-1]:>14.1f}x"
                print(line)


if __name__ == "__main__":
    main()
