"""Which SCTP to terminate data channels with: ours (sans-IO) or aiortc's (asyncio), measured.

Both run two ends of one association in this process with no DTLS under them, so the numbers
are the SCTP work alone: messages of a given size go one way, reliable and ordered, until the
receiver has them all, and CPU seconds are counted. Run: python -m bench.sctp_source
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import time

from sfu.protocol.sctp import Association
from sfu.protocol.sctp_receive import Received


def ours(count: int, size: int) -> float:
    """CPU seconds to move `count` messages of `size` bytes through our association pair."""
    server, client = Association(random.Random(1)), Association(random.Random(2))
    now = 0.0
    received = 0

    def carry(packets: list[bytes], to: Association) -> None:
        nonlocal received
        queue = collections.deque((p, to) for p in packets)
        while queue:
            packet, end = queue.popleft()
            other = client if end is server else server
            queue += [(p, other) for p in end.receive(packet, now)]
            received += sum(isinstance(e, Received) for e in end.poll_events())

    carry(client.connect(now), server)
    payload = b"x" * size
    start = time.process_time()
    for _ in range(count):
        ok, packets = client.send(1, 53, payload, now)
        carry(packets, server)
        if not ok:
            raise RuntimeError("send queue full")
    for _ in range(count):  # the last delayed SACKs
        if received >= count and not client.buffered:
            break
        now += 0.25
        carry(server.handle_timer(now), client)
        carry(client.handle_timer(now), server)
    spent = time.process_time() - start
    if received != count:
        raise RuntimeError(f"ours delivered {received} of {count}")
    return spent


async def _aiortc(count: int, size: int) -> float:
    from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
    from aiortc.rtcsctptransport import RTCSctpTransport

    class Wire:
        """The four things aiortc's SCTP uses of its DTLS transport, joined back to back."""

        def __init__(self, role: str) -> None:
            self._role = role
            self.state = "connected"
            self.peer: Wire | None = None
            self.receiver = None
            self.tasks: set[asyncio.Future[None]] = set()

        def _register_data_receiver(self, receiver) -> None:  # type: ignore[no-untyped-def]
            self.receiver = receiver

        def _unregister_data_receiver(self, receiver) -> None:  # type: ignore[no-untyped-def]
            self.receiver = None

        async def _send_data(self, data: bytes) -> None:
            receiver = self.peer.receiver  # type: ignore[union-attr]
            if receiver is not None:  # none once that end has stopped
                task = asyncio.ensure_future(receiver._handle_data(data))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    server_wire, client_wire = Wire("server"), Wire("client")
    server_wire.peer, client_wire.peer = client_wire, server_wire
    server = RTCSctpTransport(server_wire)  # type: ignore[arg-type]
    client = RTCSctpTransport(client_wire)  # type: ignore[arg-type]
    server_wire.receiver, client_wire.receiver = server, client  # both ends listen first
    done = asyncio.get_running_loop().create_future()
    received = 0

    @server.on("datachannel")
    def on_channel(channel) -> None:  # type: ignore[no-untyped-def]
        @channel.on("message")
        def on_message(message) -> None:  # type: ignore[no-untyped-def]
            nonlocal received
            received += 1
            if received == count and not done.done():
                done.set_result(None)

    await server.start(client.getCapabilities(), client.port)
    await client.start(server.getCapabilities(), server.port)
    channel = RTCDataChannel(client, RTCDataChannelParameters(label="bench"))
    for _ in range(1000):
        if channel.readyState == "open":
            break
        await asyncio.sleep(0.01)
    payload = b"x" * size
    start = time.process_time()
    for index in range(count):
        channel.send(payload)
        if index % 64 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(done, timeout=120)
    spent = time.process_time() - start
    await client.stop()
    await server.stop()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'message':>8} {'ours msg/CPU-s':>15} {'aiortc msg/CPU-s':>17} {'ratio':>6}")
    for size in (100, 1000, 16384):
        count = args.count if size < 16384 else args.count // 10
        own = ours(count, size)
        theirs = asyncio.run(_aiortc(count, size))
        print(f"{size:>7}B {count / own:>15,.0f} {count / theirs:>17,.0f} {theirs / own:>5.1f}x")


if __name__ == "__main__":
    main()
