"""STUN wire codec (RFC 8489): bytes in, a Message out, and back.

Only what an ICE-lite server needs: strict parsing, short-term-credential
MESSAGE-INTEGRITY, FINGERPRINT, XOR-MAPPED-ADDRESS and ERROR-CODE. It runs for every
STUN datagram the server receives, so parse() does one pass with struct and slices.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass, field

MAGIC_COOKIE = 0x2112A442

BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

HEADER_SIZE = 20
# RFC 8489 §6.2.1: without a known path MTU a STUN message over UDP stays under 548 bytes (576
# less IPv4 and UDP headers). A browser's Binding Request is 100-200 bytes, and even one naming
# RFC 8839's longest (256-character) ufrag is under 400, so anything larger is no ICE peer's.
MAX_MESSAGE_SIZE = 548
# Browsers send about 8 attributes. Parsing and every lookup are linear in the count, so a
# request packed with hundreds of empty ones cost 40-50 times a normal one before this bound.
MAX_ATTRIBUTES = 32
_INTEGRITY_SIZE = 24  # attribute header + 20-byte HMAC-SHA1
_FINGERPRINT_SIZE = 8  # attribute header + 4-byte CRC-32
_FINGERPRINT_XOR = 0x5354554E
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")

_HEADER = struct.Struct("!HHI12s")
_TLV = struct.Struct("!HH")
_LENGTH = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ADDRESS_HEAD = struct.Struct("!BBH")
_ERROR_HEAD = struct.Struct("!HBB")


class StunError(ValueError):
    """A datagram that is not a well-formed STUN message, or a bad attribute value."""


class StunTooLarge(StunError):
    """A message over MAX_MESSAGE_SIZE or MAX_ATTRIBUTES: refused before it is parsed whole."""


@dataclass
class Message:
    """A parsed STUN message; values stay raw so only the attributes used get decoded."""

    msg_type: int
    transaction_id: bytes
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    # Byte offsets of the MESSAGE-INTEGRITY / FINGERPRINT attribute headers, which the
    # verify functions need to know what each one covers.
    integrity_offset: int | None = None
    fingerprint_offset: int | None = None

    def get(self, attr_type: int) -> bytes | None:
        """The value of the first attribute of this type, or None."""
        for t, value in self.attributes:
            if t == attr_type:
                return value
        return None


def parse(data: bytes) -> Message:
    """Parse one datagram strictly; raise StunError, and nothing else, on any defect."""
    size = len(data)
    if size < HEADER_SIZE:
        raise StunError("shorter than a STUN header")
    if size > MAX_MESSAGE_SIZE:
        raise StunTooLarge("larger than any ICE peer's message")
    msg_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunError("top bits of the message type are set")
    if cookie != MAGIC_COOKIE:
        raise StunError("bad magic cookie")
    if length != size - HEADER_SIZE or length & 3:
        raise StunError("bad message length")

    attributes: list[tuple[int, bytes]] = []
    integrity_offset: int | None = None
    fingerprint_offset: int | None = None
    unpack_tlv = _TLV.unpack_from
    pos = HEADER_SIZE
    left = MAX_ATTRIBUTES
    # pos and size are multiples of 4, so a TLV header always fits while pos < size,
    # and a value that ends inside the message has its padding inside it too.
    while pos < size:
        if not left:
            raise StunTooLarge("more attributes than any ICE peer sends")
        left -= 1
        if fingerprint_offset is not None:
            raise StunError("attribute after FINGERPRINT")
        attr_type, attr_len = unpack_tlv(data, pos)
        start = pos + 4
        end = start + attr_len
        if end > size:
            raise StunError("attribute overruns the message")
        if attr_type == FINGERPRINT:
            if attr_len != 4:
                raise StunError("bad FINGERPRINT length")
            fingerprint_offset = pos
        elif integrity_offset is not None:
            raise StunError("attribute after MESSAGE-INTEGRITY")
        elif attr_type == MESSAGE_INTEGRITY:
            if attr_len != 20:
                raise StunError("bad MESSAGE-INTEGRITY length")
            integrity_offset = pos
        attributes.append((attr_type, data[start:end]))
        pos = start + ((attr_len + 3) & ~3)
    return Message(msg_type, transaction_id, attributes, integrity_offset, fingerprint_offset)


def _length_upto(offset: int, trailer: int) -> bytes:
    """The header length field as if the message ended after an attribute at offset."""
    return _LENGTH.pack(offset - HEADER_SIZE + trailer)


def verify_integrity(data: bytes, msg: Message, key: bytes) -> bool:
    """Check MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5); False when it is absent."""
    offset = msg.integrity_offset
    if offset is None or offset + _INTEGRITY_SIZE > len(data):
        return False
    mac = hmac.new(key, data[:2], hashlib.sha1)
    mac.update(_length_upto(offset, _INTEGRITY_SIZE))
    mac.update(memoryview(data)[4:offset])
    return hmac.compare_digest(mac.digest(), data[offset + 4 : offset + _INTEGRITY_SIZE])


def verify_fingerprint(data: bytes, msg: Message) -> bool:
    """Check FINGERPRINT (CRC-32 xor 0x5354554E, RFC 8489 §14.7); False when absent."""
    offset = msg.fingerprint_offset
    if offset is None or offset + _FINGERPRINT_SIZE > len(data):
        return False
    crc = zlib.crc32(data[:2])
    crc = zlib.crc32(_length_upto(offset, _FINGERPRINT_SIZE), crc)
    crc = zlib.crc32(memoryview(data)[4:offset], crc)
    (expected,) = _U32.unpack_from(data, offset + 4)
    return crc ^ _FINGERPRINT_XOR == expected


def encode(
    msg_type: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]],
    integrity_key: bytes | None = None,
    fingerprint: bool = True,
) -> bytes:
    """Build a message; MESSAGE-INTEGRITY (if keyed) then FINGERPRINT (if asked) go last."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    parts: list[bytes] = []
    for attr_type, value in attributes:
        parts.append(_TLV.pack(attr_type, len(value)))
        parts.append(value)
        pad = -len(value) & 3
        if pad:
            parts.append(b"\x00" * pad)
    body = b"".join(parts)
    if integrity_key is not None:
        header = _HEADER.pack(msg_type, len(body) + _INTEGRITY_SIZE, MAGIC_COOKIE, transaction_id)
        mac = hmac.digest(integrity_key, header + body, "sha1")
        body += _TLV.pack(MESSAGE_INTEGRITY, 20) + mac
    if fingerprint:
        header = _HEADER.pack(msg_type, len(body) + _FINGERPRINT_SIZE, MAGIC_COOKIE, transaction_id)
        crc = zlib.crc32(header + body) ^ _FINGERPRINT_XOR
        body += _TLV.pack(FINGERPRINT, 4) + _U32.pack(crc)
    return _HEADER.pack(msg_type, len(body), MAGIC_COOKIE, transaction_id) + body


def _xor_bytes(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value for host:port (IPv4 or IPv6)."""
    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        family, mask = 0x01, _COOKIE_BYTES
    else:
        family, mask = 0x02, _COOKIE_BYTES + transaction_id
    head = _ADDRESS_HEAD.pack(0, family, port ^ (MAGIC_COOKIE >> 16))
    return head + _xor_bytes(ip.packed, mask)


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    """(host, port) from an XOR-MAPPED-ADDRESS value; StunError when malformed."""
    if len(value) < 4:
        raise StunError("XOR-MAPPED-ADDRESS too short")
    _, family, xport = _ADDRESS_HEAD.unpack_from(value)
    port = xport ^ (MAGIC_COOKIE >> 16)
    raw = value[4:]
    if family == 0x01 and len(raw) == 4:
        return str(ipaddress.IPv4Address(_xor_bytes(raw, _COOKIE_BYTES))), port
    if family == 0x02 and len(raw) == 16:
        if len(transaction_id) != 12:
            raise StunError("bad transaction id")
        mask = _COOKIE_BYTES + transaction_id
        return str(ipaddress.IPv6Address(_xor_bytes(raw, mask))), port
    raise StunError("bad XOR-MAPPED-ADDRESS family or length")


def encode_error_code(code: int, reason: str) -> bytes:
    """ERROR-CODE value: class (hundreds) and number, then the UTF-8 reason phrase."""
    if not 300 <= code <= 699:
        raise ValueError("STUN error codes are 300..699")
    return _ERROR_HEAD.pack(0, code // 100, code % 100) + reason.encode()


def decode_error_code(value: bytes) -> tuple[int, str]:
    """(code, reason) from an ERROR-CODE value; StunError when malformed.

    The reason is for humans only, so undecodable bytes are replaced rather than
    hiding the code.
    """
    if len(value) < 4:
        raise StunError("ERROR-CODE too short")
    _, klass, number = _ERROR_HEAD.unpack_from(value)
    klass &= 0x07
    if not 3 <= klass <= 6 or number > 99:
        raise StunError("bad ERROR-CODE class or number")
    return klass * 100 + number, value[4:].decode("utf-8", errors="replace")
