"""Which of a peer's SSRCs hold an inbound SRTP stream: a bounded set, kept beside SrtpContext.

libsrtp gives every SSRC whose first packet authenticates a stream of its own (cloned from the
session's template), keeps it for the session's life, and walks them one by one for every
packet. A peer sending each packet under a new SSRC would grow that list without end and slow
every unprotect with it (3.7 µs became 167 µs after 20,000 SSRCs here). So a packet is
decrypted only when its SSRC, read in the clear header, has a stream or a place to get one,
and a stream goes as soon as its SSRC is replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

# Replaced SSRCs remembered, the newest this many, and never taken again: their streams, and
# the replay windows in them, are gone, so old packets of theirs would authenticate anew.
RETIRED_KEPT = 16


class InboundStreams:
    """The SSRCs (4 bytes, as in the packets) that have an inbound stream, by what they send.

    A media SSRC fills a slot the media handler names (one layer of one m-line): a slot's new
    SSRC replaces its old one, whose stream is removed, and at most `media_limit` slots exist.
    An SSRC that only sends RTCP (a player's receiver SSRC) is taken first come, at most
    `rtcp_limit` of them. `rtp` and `rtcp` are what the hot path tests a packet's SSRC against.
    """

    __slots__ = (
        "_media_limit",
        "_remove",
        "_retired",
        "_rtcp_limit",
        "_senders",
        "_slots",
        "rtcp",
        "rtp",
    )

    def __init__(self, remove: Callable[[int], None], media_limit: int, rtcp_limit: int) -> None:
        self._remove = remove
        self._media_limit = media_limit
        self._rtcp_limit = rtcp_limit
        self._slots: dict[Hashable, bytes] = {}
        self._senders: set[bytes] = set()
        self._retired: dict[bytes, None] = {}  # oldest first
        self.rtp: set[bytes] = set()
        self.rtcp: set[bytes] = set()  # the media SSRCs and the RTCP-only senders

    def __len__(self) -> int:
        """How many inbound streams libsrtp holds for the peer."""
        return len(self.rtcp)

    def retired(self, ssrc: bytes) -> bool:
        """True for an SSRC whose stream was removed when its slot got another one."""
        return ssrc in self._retired

    def may_try_sender(self, ssrc: bytes) -> bool:
        """Whether RTCP from an SSRC without a stream is worth decrypting: room is left."""
        return len(self._senders) < self._rtcp_limit and ssrc not in self._retired

    def allow_senders(self, rtcp_limit: int) -> None:
        """Raise the cap on RTCP-only senders, never lower it: a renegotiation added m-lines,
        and a receiver SSRC each."""
        self._rtcp_limit = max(self._rtcp_limit, rtcp_limit)

    def add_sender(self, ssrc: bytes) -> None:
        """Keep the stream an authenticated RTCP packet from a new SSRC just made."""
        self._senders.add(ssrc)
        self.rtcp.add(ssrc)

    def adopt(self, slot: Hashable, ssrc: bytes) -> bool:
        """Give `slot` the SSRC of an RTP packet that just authenticated, removing the stream
        of the SSRC it replaces; False, its new stream removed, when no slot is left."""
        old = self._slots.get(slot)
        if old == ssrc:
            return True
        if old is None and len(self._slots) >= self._media_limit:
            if ssrc not in self.rtcp:
                self._remove(int.from_bytes(ssrc, "big"))
            return False
        self._slots[slot] = ssrc
        self._senders.discard(ssrc)
        self.rtp.add(ssrc)
        self.rtcp.add(ssrc)
        if old is not None:
            self.rtp.discard(old)
            self.rtcp.discard(old)
            self._remove(int.from_bytes(old, "big"))
            self._retired[old] = None
            if len(self._retired) > RETIRED_KEPT:
                del self._retired[next(iter(self._retired))]
        return True
