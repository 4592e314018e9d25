"""What a media packet costs the server over ICE-TCP against UDP, sending and receiving.

    python -m bench.ice_tcp_cost [--packets 20000] [--size 1200]

Both run on real loopback sockets in this process: the server's UdpEndpoint and TcpListener
(the ones sfu/io/server.py opens), and a client UDP socket and TCP connection that read what the
server sends. Sending is `endpoint.send` to the client's UDP address, or to its ICE-TCP
address (framed onto the connection); receiving is a batch of datagrams the client sent,
read by the endpoint's socket reader, or the same bytes as RFC 4571 frames fed to the
connection. No session owns the client, so every received packet ends at the session lookup
(counted as `media_unknown_address`): what is measured is what the transports add before it.
CPU time of the server's calls alone (time.process_time, garbage collector paused), in
microseconds per packet. The TCP receive figure includes reading the bytes from a socket.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import time

from sfu.io.tcp import TcpListener, tcp_address
from sfu.io.udp import UdpEndpoint
from sfu.session.table import SessionTable
from sfu.wire.framing import frame

BATCH = 200  # packets per timed call; the client drains between batches


def timed(call: object) -> float:
    """CPU seconds of one call, with the cyclic collector held off."""
    gc.disable()
    try:
        start = time.process_time()
        call()  # type: ignore[operator]
        return time.process_time() - start
    finally:
        gc.enable()


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair with room for a batch in flight."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    for sock in (client, accepted):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    return client, accepted


def read(sock: socket.socket, like: bytes) -> bytes:
    """As many bytes as `like` holds, read as the event loop would (up to 256 KiB a call)."""
    parts, left = [], len(like)
    while left:
        part = sock.recv(min(left, 256 * 1024))
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


async def measure(packets: int, size: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    endpoint = UdpEndpoint(SessionTable())
    endpoint.open("127.0.0.1", 0, 4 * 1024 * 1024)
    listener = TcpListener(endpoint, max_write_buffer=16 * 1024 * 1024)
    endpoint.tcp = listener
    await listener.open("127.0.0.1", 0)
    client_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client_udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    client_udp.bind(("127.0.0.1", 0))
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    await asyncio.sleep(0.05)
    (connection,) = listener.connections.values()
    tcp_peer = tcp_address(writer.get_extra_info("sockname"))
    # asyncio reads the listener's connections in its own callback, which cannot be timed
    # alone: the same bytes are read from a plain loopback TCP socket pair instead.
    raw_client, raw_server = socket_pair()
    packet = b"\x80\x60" + bytes(size - 2)  # an RTP-looking datagram (first byte 128..191)
    udp_peer = client_udp.getsockname()
    stream = frame(packet) * BATCH
    totals = dict.fromkeys(("udp send", "tcp send", "udp receive", "tcp receive"), 0.0)
    endpoint_sock = endpoint.sock
    assert endpoint_sock is not None
    loop.remove_reader(endpoint_sock.fileno())  # the bench calls the reader itself
    for _ in range(packets // BATCH):
        totals["udp send"] += timed(lambda: [endpoint.send(packet, udp_peer) for _ in range(BATCH)])
        for _ in range(BATCH):
            client_udp.recv(4096)
        totals["tcp send"] += timed(lambda: [endpoint.send(packet, tcp_peer) for _ in range(BATCH)])
        await reader.readexactly(BATCH * (size + 2))
        for _ in range(BATCH):
            client_udp.sendto(packet, endpoint_sock.getsockname())
        totals["udp receive"] += timed(lambda: endpoint._on_readable(endpoint_sock, False))
        raw_client.sendall(stream)
        totals["tcp receive"] += timed(lambda: connection.data_received(read(raw_server, stream)))
    drops = endpoint.drops["media_unknown_address"]
    writer.close()
    listener.close()
    endpoint.close()
    client_udp.close()
    raw_client.close()
    raw_server.close()
    assert drops == 2 * (packets // BATCH) * BATCH, drops
    return {name: 1e6 * total / (packets // BATCH * BATCH) for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()
    result = asyncio.run(measure(args.packets, args.size))
    for name, micros in result.items():
        print(f"{name:12s} {micros:6.2f} µs/packet")
    for way in ("send", "receive"):
        ratio = result[f"tcp {way}"] / result[f"udp {way}"]
        print(f"tcp/udp {way}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
