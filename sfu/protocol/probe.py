"""Probing a player's link before moving it up a simulcast layer, without sending more media.

An upgrade that does not fit freezes the picture until the move back down, so before an
automatic move up the player first gets padding that brings its send rate to about the target
layer's bitrate for a short window. The padding goes as RTX packets with no payload, only RTP
padding (RFC 3550 §5.1: P bit, the count in the last byte; RFC 4588: the RTX stream's own SSRC
and sequence numbers, so the receiver's media stream is not touched), each with the player's
transport-wide sequence number so its transport-cc feedback measures them like media. The
estimator then tells whether the link carried the extra rate: no overuse, an estimate still at
the target, and the delivered rate near it.

Sans-IO: `Probe` says how much padding is due at a time and judges the outcome from numbers;
`padding_packet` builds one plaintext packet. The Player sends them and drives the clock.
"""

from __future__ import annotations

import struct

MAX_PADDING = 255  # bytes of padding one packet can say it carries (one count byte)
PROBE_DURATION = 1.0  # seconds of padding: the delivered rate looks back one second
PROBE_SETTLE = 0.5  # then this long for the feedback of the last padding to come back
MAX_PROBE_RATE = 2_000_000.0  # bits per second of padding, whatever the layers' gap
MAX_PACKETS_PER_CALL = 64  # padding packets sent at one tick, however late the tick is
DELIVERED_SHARE = 0.8  # of the target bitrate that must have reached the player

_HEADER = struct.Struct("!BBHII")


def probe_rate(target_bitrate: float, current_bitrate: float) -> float:
    """Padding bits per second: what the target layer adds to the current one, capped."""
    return max(0.0, min(MAX_PROBE_RATE, target_bitrate - current_bitrate))


def padding_packet(payload_type: int, seq: int, timestamp: int, ssrc: int, padding: int) -> bytes:
    """A plaintext RTP packet with no payload and `padding` (1-255) bytes of padding, whose
    last byte is the count (the sender adds its header extensions after the fixed header)."""
    if not 1 <= padding <= MAX_PADDING:
        raise ValueError(f"padding of {padding} bytes: one packet carries 1-{MAX_PADDING}")
    header = _HEADER.pack(0xA0, payload_type & 0x7F, seq & 0xFFFF, timestamp, ssrc)
    return header + bytes(padding - 1) + bytes((padding,))


class Probe:
    """One probe: padding at `rate` for PROBE_DURATION from `now`, judged PROBE_SETTLE later
    against `target` (the target layer's bitrate). An estimate below `floor` fails it: by
    default the target, which the estimate already allowed for a move up; a probe that tests
    more than the estimate (resuming paused video) gets the estimate at its start: a cut."""

    def __init__(
        self, target: float, rate: float, now: float, overuses: int, floor: float | None = None
    ) -> None:
        self.target = target
        self.floor = target if floor is None else floor
        self.rate = rate
        self.started = now
        self.ends = now + PROBE_DURATION
        self.decided_at = self.ends + PROBE_SETTLE
        self._overuses = overuses  # the estimator's count when the probe began
        self._sent_bits = 0.0
        self.delivered = 0.0  # the best delivered rate seen since the padding ended

    def paddings(self, now: float, packet_overhead: int) -> list[int]:
        """Padding sizes of the packets due by `now` to keep to the rate; each packet also
        costs `packet_overhead` bytes of header, which counts against the rate too."""
        elapsed = min(now, self.ends) - self.started
        owed = self.rate * elapsed - self._sent_bits
        sizes: list[int] = []
        while owed > 0 and len(sizes) < MAX_PACKETS_PER_CALL:
            padding = max(1, min(MAX_PADDING, int(owed / 8) - packet_overhead))
            sizes.append(padding)
            bits = 8 * (padding + packet_overhead)
            owed -= bits
            self._sent_bits += bits
        return sizes

    def verdict(
        self, now: float, overuses: int, estimate: float | None, delivered: float | None
    ) -> bool | None:
        """False as soon as the link shows it does not carry the target (an overuse, or the
        estimate cut below the floor); once settled, True when the delivered rate measured
        over the padding window came near the target; None while it runs."""
        if overuses != self._overuses or estimate is None or estimate < self.floor:
            return False
        if now >= self.ends and delivered is not None:
            self.delivered = max(self.delivered, delivered)
        if now < self.decided_at:
            return None
        return self.delivered >= DELIVERED_SHARE * self.target
