"""Data channel relay cost: one publisher's messages to N players, through the server.

    python -m bench.data [--players 100] [--messages 2000] [--sizes 100 1000 16384]

The real router, sessions, DTLS and SCTP run in memory on the fake clock of tests/harness.py:
a publisher opens one reliable ordered channel, the server opens it toward every player and
relays each message to each of them. Only the server's CPU is counted (its datagram handler and
its timers, with time.process_time); the peers' work is not. It prints, per message size,
messages relayed (one message to one player) per server CPU-second and the payload MB/s that
makes, and checks every player received every message in order.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from sfu.config import MediaConfig
from sfu.protocol.datachannel import ChannelOptions
from tests.harness import Harness, Server

BATCH = 20  # messages the publisher sends per 10 ms step: 2,000 a second


class ServerClock:
    """CPU seconds the server spends on datagrams and timers."""

    def __init__(self, server: Server) -> None:
        self.seconds = 0.0
        endpoint, router = server.endpoint, server.router
        endpoint.datagram_received = self._timed(endpoint.datagram_received)  # type: ignore[method-assign]
        router.handle_timer = self._timed(router.handle_timer)  # type: ignore[method-assign]

    def _timed(self, handle: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            start = time.process_time()
            try:
                return handle(*args)
            finally:
                self.seconds += time.process_time() - start

        return timed


def measure(players: int, messages: int, size: int) -> tuple[float, float]:
    """(messages relayed per server CPU-second, MB/s per server CPU-second)."""
    config = MediaConfig(
        data_message_rate=1e9, data_byte_rate=1e12, data_receiver_buffer=64 * 1024 * 1024
    )
    harness = Harness(config=config)
    publisher = harness.publisher("bench", data=True)
    publisher.sending = False  # data only: no synthetic media
    audience = [harness.player("bench", data=True) for _ in range(players)]
    harness.connect(publisher, *audience, within=20)
    harness.run(0.5)
    stream = publisher.open_channel(ChannelOptions("bench"))
    harness.run(0.5)
    clock = ServerClock(harness.server)
    payload = b"d" * size
    for start in range(0, messages, BATCH):
        for _ in range(min(BATCH, messages - start)):
            if not publisher.send_message(stream, payload):
                raise RuntimeError("the publisher's send queue is full")
        harness.run(0.01)
    harness.run(3)
    for player in audience:
        got = player.messages()
        if len(got) != messages or any(m != payload for m in got):
            raise RuntimeError(f"a player received {len(got)} of {messages} messages")
    relayed = messages * players
    return relayed / clock.seconds, relayed * size / clock.seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 16384])
    args = parser.parse_args()
    print(f"1 publisher -> {args.players} players, one reliable ordered channel")
    print(f"{'message':>8} {'relayed msg/CPU-s':>18} {'MB/CPU-s':>9}")
    for size in args.sizes:
        count = args.messages if size < 16384 else max(BATCH, args.messages // 10)
        rate, megabytes = measure(args.players, count, size)
        print(f"{size:>7}B {rate:>18,.0f} {megabytes:>9.1f}")


if __name__ == "__main__":
    main()
