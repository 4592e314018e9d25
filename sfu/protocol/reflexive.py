"""The media socket's public address, learnt from STUN servers (RFC 8489 Binding), sans-IO.

On a cloud VM behind 1:1 NAT the public address is on no interface, so the automatic host
candidates name only private ones. Asked from the media socket, a STUN server tells the address
its request came from: the server-reflexive address (RFC 8445 §5.1.1.1), which answers then
advertise as a `typ srflx` candidate. Each configured server is asked at start and every
REFRESH seconds; a request is resent RTO, 2 RTO, ... apart up to ATTEMPTS times (RFC 8489
§6.2.1), and a server that never answers is asked again after RETRY. Nothing here needs
credentials or state beyond one request per server: an answer is taken only with the
transaction id of a request under way and from the server it went to.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from sfu.protocol.ice import SYSTEM_RANDOM
from sfu.wire.stun import (
    BINDING_REQUEST,
    BINDING_SUCCESS,
    XOR_MAPPED_ADDRESS,
    Message,
    StunError,
    decode_xor_address,
    encode,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]

RTO = 0.5  # seconds before the first resend
ATTEMPTS = 5  # requests per round: the last goes out 7.5 s after the first
REFRESH = 300.0  # seconds between rounds: a NAT mapping may change (a VM moved, a new lease)
RETRY = 30.0  # seconds after a round that got no answer


@dataclass
class _Request:
    server: Address
    data: bytes
    sent_at: float
    attempts: int


class ReflexiveDiscovery:
    """Binding requests to STUN servers, their answers, and the addresses they tell."""

    def __init__(self, rng: random.Random = SYSTEM_RANDOM) -> None:
        self._rng = rng
        self.mapped: dict[Address, Address] = {}  # by STUN server: what it last told
        self._next_round: dict[Address, float] = {}
        self._pending: dict[bytes, _Request] = {}
        self.answers = 0
        self.failures = 0  # rounds that got no answer

    def add_server(self, server: Address, now: float) -> None:
        """Ask `server` (an IP address and port) from now on."""
        self._next_round.setdefault(server, now)

    def addresses(self) -> list[Address]:
        """The distinct addresses the servers told, in the order the servers were added."""
        found = (self.mapped[s] for s in self._next_round if s in self.mapped)
        return list(dict.fromkeys(found))

    def owns(self, transaction_id: bytes) -> bool:
        return transaction_id in self._pending

    def next_due(self) -> float | None:
        """When poll has work next; None when no server is known yet."""
        times = [r.sent_at + RTO * 2 ** (r.attempts - 1) for r in self._pending.values()]
        busy = {r.server for r in self._pending.values()}
        times += [at for server, at in self._next_round.items() if server not in busy]
        return min(times, default=None)

    def poll(self, now: float) -> list[tuple[bytes, Address]]:
        """Requests to send now: new rounds and resends; rounds out of attempts are given up."""
        out = []
        for transaction_id, request in list(self._pending.items()):
            if now < request.sent_at + RTO * 2 ** (request.attempts - 1):
                continue
            if request.attempts >= ATTEMPTS:
                del self._pending[transaction_id]
                self.failures += 1
                self._next_round[request.server] = now + RETRY
                log.warning(
                    "STUN server %s:%d did not answer; asking again in %g s",
                    *request.server,
                    RETRY,
                )
                continue
            request.attempts += 1
            request.sent_at = now
            out.append((request.data, request.server))
        busy = {r.server for r in self._pending.values()}
        for server, at in self._next_round.items():
            if server in busy or now < at:
                continue
            transaction_id = self._rng.randbytes(12)
            data = encode(BINDING_REQUEST, transaction_id, [], fingerprint=True)
            self._pending[transaction_id] = _Request(server, data, now, 1)
            out.append((data, server))
        return out

    def handle(self, msg: Message, addr: Address, now: float) -> bool:
        """Take an answer to one of our requests; False when it is not one (or not valid)."""
        request = self._pending.get(msg.transaction_id)
        if request is None or request.server != addr:
            return False
        value = msg.get(XOR_MAPPED_ADDRESS)
        if msg.msg_type != BINDING_SUCCESS or value is None:
            return False  # an error answer: the round runs on and fails in its time
        try:
            mapped = decode_xor_address(value, msg.transaction_id)
        except StunError:
            return False
        del self._pending[msg.transaction_id]
        self.answers += 1
        self._next_round[addr] = now + REFRESH
        if self.mapped.get(addr) != mapped:
            log.info("media: STUN server %s:%d sees us at %s:%d", *addr, *mapped)
        self.mapped[addr] = mapped
        return True
