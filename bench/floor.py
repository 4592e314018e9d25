"""The kernel's floor under the fan-out: sendmmsg alone, beside LiteSFU's fan-out, to the same
players that read.

    python -m bench.floor [--players 400 800] [--packets 600] [--gap-ms 9] [--rounds 3]

On loopback most of a forwarded packet's cost is the kernel's: the send, and the delivery into
the receiving socket and the receiver's wake-up, which run in the sender's system call. Any
server pays that, in C or not. This measures it alone, with a C program (bench/floor.c, built
here with the system's C compiler) that sends 1200-byte datagrams to N sockets with one
sendmmsg a packet, and then LiteSFU's compiled fan-out (rewrite, SRTP with keys from a real
DTLS handshake, sendmmsg) of 1200-byte RTP packets to the same N sockets, while a second C
process reads all N with epoll as N players would. Both pace a packet every `--gap-ms` (the
load generator's publisher sends ~112 packets/s) and are timed the same way (getrusage
around the sends), alternately for `--rounds` rounds; the ratio of the medians is what the
fan-out adds to the kernel's own cost. Numbers only.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.forward import PROFILES, packet_stream, server_keys, track_with_players
from sfu.protocol import fastpath
from sfu.protocol.dtls import SrtpKeys

SOURCE = Path(__file__).with_name("floor.c")
DATAGRAM = 1200
READER_TIMEOUT = 10.0


def build(into: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("floor: needs a C compiler (cc or gcc)")
    binary = into / "floor"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fanout_cost(
    keys: SrtpKeys, players: list[tuple[str, int]], packets: int, gap: float
) -> tuple[float, int]:
    """CPU µs per datagram of LiteSFU's fan-out to `players`, and the datagrams it sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        source, subscribers = track_with_players(keys, players, sender)
        # 12-byte header and 2 bytes of VP8 descriptor: 1200 bytes, as the C sender's.
        stream = packet_stream(packets, payload=DATAGRAM - 14)
        spent = 0.0
        for index, packet in enumerate(stream):
            started = cpu_seconds()
            source.forward(packet, index * gap)
            spent += cpu_seconds() - started
            time.sleep(gap)
    sent = sum(player.packets for player in subscribers)
    return (spent / sent * 1e6 if sent else 0.0), sent


def bare_cost(binary: Path, ports: list[str], packets: int, gap: float) -> tuple[float, int]:
    """CPU µs per datagram of the C program's sendmmsg to the same ports, and its count."""
    command = [str(binary), "send", str(DATAGRAM), str(packets), str(int(gap * 1e6)), *ports]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return float(output[0]), int(output[1])


def run(
    binary: Path, count: int, packets: int, gap: float, rounds: int
) -> tuple[list[float], list[float], float]:
    """Each cost per round, alternating which goes first, and the share of datagrams read."""
    keys = server_keys(PROFILES["AES-GCM"])
    sockets = []
    bare: list[float] = []
    fanout: list[float] = []
    sent = 0
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(("127.0.0.1", 0))
        fds = [sock.fileno() for sock in sockets]
        reader = subprocess.Popen(
            [str(binary), "read", *map(str, fds)],
            pass_fds=fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            ports = [str(sock.getsockname()[1]) for sock in sockets]
            addresses = [sock.getsockname() for sock in sockets]
            for round_index in range(rounds):
                for kind in ("bare", "fanout") if round_index % 2 == 0 else ("fanout", "bare"):
                    if kind == "bare":
                        cost, n = bare_cost(binary, ports, packets, gap)
                        bare.append(cost)
                    else:
                        cost, n = fanout_cost(keys, addresses, packets, gap)
                        fanout.append(cost)
                    sent += n
            read = int(reader.communicate("", timeout=READER_TIMEOUT)[0])
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    finally:
        for sock in sockets:
            sock.close()
    return bare, fanout, read / sent if sent else 0.0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[400, 800])
    parser.add_argument("--packets", type=int, default=600)
    parser.add_argument("--gap-ms", type=float, default=9.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternated")
    args = parser.parse_args(argv)
    if fastpath.fanout is None:
        raise SystemExit(f"floor: the compiled fan-out is not active ({fastpath.WHY})")
    if not all(1 <= players <= 4096 for players in args.players):
        parser.error("--players must be 1-4096")
    if args.packets < 1 or args.rounds < 1:
        parser.error("--packets and --rounds must be at least 1")
    print(
        f"{args.rounds} rounds of {args.packets} packets, medians; read: datagrams the players got"
    )
    print(f"{'players':>7} {'sendmmsg µs':>11} {'fan-out µs':>10} {'ratio':>6} {'read':>7}")
    with tempfile.TemporaryDirectory(prefix="litesfu-floor-") as tmp:
        binary = build(Path(tmp))
        for players in args.players:
            gap = args.gap_ms / 1000
            bare, fanout, read = run(binary, players, args.packets, gap, args.rounds)
            low, high = statistics.median(bare), statistics.median(fanout)
            print(f"{players:>7} {low:>11.2f} {high:>10.2f} {high / low:>5.2f}x {read:>6.1%}")


if __name__ == "__main__":
    main()
