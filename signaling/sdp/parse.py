"""Parse an SDP offer into plain values.

Our own small parser rather than aiortc's, so that every rejection is an `SdpError` with a one-line
reason a client can read in the HTTP 400 body. It is strict about structure (line syntax, m= lines,
numbers) and tolerant of attributes it does not know, since browsers add new ones every release.
Work is bounded: the text size and the number of m-lines are capped before anything is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_OFFER_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 64
# A room subscriber's offer: a slot (m-line) per kind per other participant, so 126 others
# at most; the 64 KiB text bound still holds, which a browser's full codec list fills sooner.
MAX_ROOM_MEDIA_SECTIONS = 256
MAX_FORMATS = 128  # formats per m-line: RTP has 128 payload types, so more are repeats
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

_LINE = re.compile(r"([a-z])=(.*)\Z", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_PROTO = re.compile(r"[A-Za-z0-9]+(?:/[A-Za-z0-9]+)*\Z")
_RTPMAP = re.compile(r"(\d{1,3}) ([^ /]+)/(\d{1,10})(?:/(\d{1,3}))?\Z")
_EXTMAP = re.compile(r"(\d{1,3})(?:/[a-z]+)? +(\S+)(?: .*)?\Z")
_FINGERPRINT = re.compile(r"(\S+) +([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)\Z")
_SSRC = re.compile(r"(\d{1,10}) ([^:\s]+)(?::(.*))?\Z")


class SdpError(ValueError):
    """An offer we cannot read; the message is one line, fit for an HTTP 400 body."""


@dataclass(frozen=True)
class Rtpmap:
    """One a=rtpmap: encoding name, clock rate and channel count (0 when not given)."""

    name: str
    clock_rate: int
    channels: int = 0


@dataclass
class MediaSection:
    """One m-line and the attributes under it, as offered."""

    index: int
    kind: str
    port: int
    proto: str
    fmt: list[str]  # the m-line's formats, verbatim
    payload_types: list[int]  # the same formats as numbers, for RTP protocols
    direction: str = "sendrecv"
    mid: str | None = None
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    bundle_only: bool = False
    rtpmap: dict[int, Rtpmap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_fb: dict[int, list[str]] = field(default_factory=dict)
    rtcp_fb_all: list[str] = field(default_factory=list)  # a=rtcp-fb:* values
    extmap: dict[int, str] = field(default_factory=dict)  # id -> URI, direction suffix dropped
    ssrcs: dict[int, dict[str, str]] = field(default_factory=dict)  # ssrc -> attribute -> value
    ssrc_groups: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    msid: str | None = None
    rids: list[str] = field(default_factory=list)  # a=rid values, raw
    simulcast: str | None = None  # a=simulcast value, raw
    sctp_port: int | None = None  # a=sctp-port of a data channel m-line (RFC 8841)
    max_message_size: int | None = None  # a=max-message-size; 0 means no limit

    @property
    def effective_mid(self) -> str:
        """The a=mid, or the m-line index when the offer has none (old or minimal clients)."""
        return self.mid if self.mid is not None else str(self.index)

    def feedback_for(self, pt: int) -> list[str]:
        """The rtcp-fb values that apply to `pt`: its own, then the wildcard ones, no repeats."""
        values: list[str] = []
        for value in [*self.rtcp_fb.get(pt, ()), *self.rtcp_fb_all]:
            if value not in values:
                values.append(value)
        return values


@dataclass
class Offer:
    """A parsed offer: session-level transport attributes and the media sections in order."""

    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str | None = None
    ice_lite: bool = False
    bundle_groups: list[list[str]] = field(default_factory=list)
    media: list[MediaSection] = field(default_factory=list)

    def bundle_group(self, mids: list[str]) -> list[str] | None:
        """The offer's BUNDLE group that holds every one of `mids`, or None."""
        return next((group for group in self.bundle_groups if set(mids) <= set(group)), None)


def _number(text: str, low: int, high: int, where: str) -> int:
    """An ASCII decimal in [low, high], or SdpError naming `where`."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise SdpError(f"{where}: {text[:20]!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise SdpError(f"{where}: {value} is out of range {low}..{high}")
    return value


def _parse_m_line(value: str, index: int, where: str) -> MediaSection:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts) or not _TOKEN.match(parts[0]) or not _PROTO.match(parts[2]):
        raise SdpError(f"{where}: bad m= line")
    kind, port_text, proto = parts[0], parts[1], parts[2]
    port = _number(port_text.partition("/")[0], 0, 65535, where)
    fmt = parts[3:]
    if len(fmt) > MAX_FORMATS:
        raise SdpError(f"{where}: {len(fmt)} formats on one m= line; the limit is {MAX_FORMATS}")
    payload_types: list[int] = []
    if "RTP/" in proto:
        payload_types = [_number(f, 0, 127, where) for f in fmt]
    return MediaSection(
        index=index, kind=kind, port=port, proto=proto, fmt=fmt, payload_types=payload_types
    )


def _parse_fingerprint(value: str, where: str) -> tuple[str, str]:
    match = _FINGERPRINT.match(value.strip())
    if match is None:
        raise SdpError(f"{where}: bad a=fingerprint")
    return match.group(1).lower(), match.group(2).upper()


def _parse_media_attribute(section: MediaSection, name: str, value: str, where: str) -> None:
    """Fill `section` from one media-level attribute; unknown attributes are ignored."""
    if name == "rtpmap":
        match = _RTPMAP.match(value.strip())
        if match is None:
            raise SdpError(f"{where}: bad a=rtpmap")
        pt = _number(match.group(1), 0, 127, where)
        clock = _number(match.group(3), 1, 4_294_967_295, where)
        channels = _number(match.group(4), 1, 255, where) if match.group(4) else 0
        section.rtpmap[pt] = Rtpmap(match.group(2), clock, channels)
    elif name == "fmtp":
        pt_text, _, params = value.partition(" ")
        section.fmtp[_number(pt_text, 0, 127, where)] = params.strip()
    elif name == "rtcp-fb":
        pt_text, _, feedback = value.partition(" ")
        feedback = " ".join(feedback.split())
        if not feedback:
            raise SdpError(f"{where}: bad a=rtcp-fb")
        if pt_text == "*":
            section.rtcp_fb_all.append(feedback)
        else:
            section.rtcp_fb.setdefault(_number(pt_text, 0, 127, where), []).append(feedback)
    elif name == "extmap":
        match = _EXTMAP.match(value.strip())
        if match is None:
            raise SdpError(f"{where}: bad a=extmap")
        section.extmap[_number(match.group(1), 1, 255, where)] = match.group(2)
    elif name == "ssrc":
        match = _SSRC.match(value.strip())
        if match is None:
            raise SdpError(f"{where}: bad a=ssrc")
        ssrc = _number(match.group(1), 0, 0xFFFFFFFF, where)
        section.ssrcs.setdefault(ssrc, {})[match.group(2)] = (match.group(3) or "").strip()
    elif name == "ssrc-group":
        parts = value.split()
        if len(parts) < 2:
            raise SdpError(f"{where}: bad a=ssrc-group")
        ssrcs = tuple(_number(p, 0, 0xFFFFFFFF, where) for p in parts[1:])
        section.ssrc_groups.append((parts[0], ssrcs))
    elif name == "mid":
        if not value.strip():
            raise SdpError(f"{where}: empty a=mid")
        section.mid = value.strip()
    elif name in DIRECTIONS:
        section.direction = name
    elif name == "rtcp-mux":
        section.rtcp_mux = True
    elif name == "rtcp-rsize":
        section.rtcp_rsize = True
    elif name == "bundle-only":
        section.bundle_only = True
    elif name == "msid":
        section.msid = value.strip()
    elif name == "rid":
        section.rids.append(value.strip())
    elif name == "simulcast":
        section.simulcast = value.strip()
    elif name == "ice-ufrag":
        section.ice_ufrag = value.strip()
    elif name == "ice-pwd":
        section.ice_pwd = value.strip()
    elif name == "fingerprint":
        section.fingerprints.append(_parse_fingerprint(value, where))
    elif name == "setup":
        section.setup = value.strip()
    elif name == "sctp-port":
        section.sctp_port = _number(value.strip(), 0, 65535, where)
    elif name == "max-message-size":
        section.max_message_size = _number(value.strip(), 0, 0xFFFFFFFF, where)


def _parse_session_attribute(offer: Offer, name: str, value: str, where: str) -> str | None:
    """Fill `offer` from one session-level attribute; return a session-wide direction if any."""
    if name == "ice-ufrag":
        offer.ice_ufrag = value.strip()
    elif name == "ice-pwd":
        offer.ice_pwd = value.strip()
    elif name == "fingerprint":
        offer.fingerprints.append(_parse_fingerprint(value, where))
    elif name == "setup":
        offer.setup = value.strip()
    elif name == "ice-lite":
        offer.ice_lite = True
    elif name == "group":
        parts = value.split()
        if parts and parts[0] == "BUNDLE":
            offer.bundle_groups.append(parts[1:])
    elif name in DIRECTIONS:
        return name
    return None


def _lines(text: str) -> list[str]:
    """Split on \\n (CRLF or LF), dropping blank lines at the end only."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def parse_offer(text: str, max_media: int = MAX_MEDIA_SECTIONS) -> Offer:
    """Parse an SDP offer of at most `max_media` m-lines; raise SdpError with a one-line
    reason when it is malformed."""
    if len(text) > MAX_OFFER_BYTES or len(text.encode("utf-8", "replace")) > MAX_OFFER_BYTES:
        raise SdpError(f"offer is larger than {MAX_OFFER_BYTES} bytes")
    lines = _lines(text)
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("offer does not start with v=0")
    offer = Offer()
    session_direction: str | None = None
    section: MediaSection | None = None
    explicit_direction = False
    for number, line in enumerate(lines[1:], start=2):
        where = f"line {number}"
        match = _LINE.match(line)
        if match is None:
            raise SdpError(f"{where}: not a <type>=<value> line")
        kind, value = match.group(1), match.group(2)
        if kind == "v":
            raise SdpError(f"{where}: second v= line")
        if kind == "m":
            if len(offer.media) >= max_media:
                raise SdpError(f"offer has more than {max_media} m-lines")
            if section is not None and not explicit_direction and session_direction:
                section.direction = session_direction
            section = _parse_m_line(value, len(offer.media), where)
            explicit_direction = False
            offer.media.append(section)
        elif kind == "a":
            name, _, attr_value = value.partition(":")
            if section is None:
                direction = _parse_session_attribute(offer, name, attr_value, where)
                session_direction = direction or session_direction
            else:
                _parse_media_attribute(section, name, attr_value, where)
                explicit_direction = explicit_direction or name in DIRECTIONS
    if section is not None and not explicit_direction and session_direction:
        section.direction = session_direction
    mids = [m.effective_mid for m in offer.media]
    duplicate = next((mid for i, mid in enumerate(mids) if mid in mids[:i]), None)
    if duplicate is not None:
        raise SdpError(f"offer has two m-lines with a=mid {duplicate[:32]!r}")
    return offer
