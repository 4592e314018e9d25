"""Two SCTP associations joined by a lossy link on a fake clock, for the association tests."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from sfu.protocol.sctp import Association, AssociationEvent
from sfu.protocol.sctp_receive import Received


@dataclass
class Path:
    """One direction: loss, duplication and delay with jitter (which reorders)."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.01
    jitter: float = 0.0
    blocked: bool = False


@dataclass
class Pair:
    """`client` (which starts the association) and `server`, with what each has reported."""

    rng: random.Random = field(default_factory=lambda: random.Random(7))
    client: Association = field(default_factory=lambda: Association(random.Random(1)))
    server: Association = field(default_factory=lambda: Association(random.Random(2)))
    up: Path = field(default_factory=Path)  # client -> server
    down: Path = field(default_factory=Path)
    now: float = 0.0
    sent: list[tuple[float, str, bytes]] = field(default_factory=list)  # (time, "up"/"down", pkt)
    client_events: list[AssociationEvent] = field(default_factory=list)
    server_events: list[AssociationEvent] = field(default_factory=list)
    _queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    _serial: int = 0

    def connect(self) -> None:
        self.carry("up", self.client.connect(self.now))
        self.run(1.0)

    def carry(self, direction: str, packets: list[bytes]) -> None:
        path = self.up if direction == "up" else self.down
        for packet in packets:
            self.sent.append((self.now, direction, packet))
            if path.blocked or self.rng.random() < path.loss:
                continue
            copies = 2 if self.rng.random() < path.duplicate else 1
            for _ in range(copies):
                at = self.now + path.delay + self.rng.random() * path.jitter
                self._serial += 1
                heapq.heappush(self._queue, (at, self._serial, direction, packet))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            # Straight to the next delivery or timer: the clock never stands still.
            due = [end, *self._next_timers()]
            if self._queue:
                due.append(self._queue[0][0])
            self.now = max(min(due), self.now + 1e-6)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, direction, packet = heapq.heappop(self._queue)
                if direction == "up":
                    self.carry("down", self.server.receive(packet, self.now))
                else:
                    self.carry("up", self.client.receive(packet, self.now))
            for end_, direction in ((self.client, "up"), (self.server, "down")):
                at = end_.next_timer()
                if at is not None and self.now >= at:
                    self.carry(direction, end_.handle_timer(self.now))
            self.client_events += self.client.poll_events()
            self.server_events += self.server.poll_events()

    def _next_timers(self) -> list[float]:
        times = (self.client.next_timer(), self.server.next_timer())
        return [t for t in times if t is not None]

    def send(self, payload: bytes, stream: int = 1, **options: object) -> bool:
        ok, packets = self.client.send(stream, 53, payload, self.now, **options)  # type: ignore[arg-type]
        self.carry("up", packets)
        return ok

    def delivered(self) -> list[bytes]:
        return [e.data for e in self.server_events if isinstance(e, Received)]
