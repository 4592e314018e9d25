"""STUN codec: RFC 5769 vectors, round trips, every strictness rule, and fuzzing."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.wire import stun
from sfu.wire.stun import StunError

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.1: SOFTWARE "STUN test client", PRIORITY, ICE-CONTROLLED, USERNAME
# "evtj:h6vY" (padded with spaces), MESSAGE-INTEGRITY, FINGERPRINT.
SAMPLE_REQUEST = bytes.fromhex(
    "00010058"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "80220010"
    "5354554e20746573"
    "7420636c69656e74"
    "00240004"
    "6e0001ff"
    "80290008"
    "932ff9b151263b36"
    "00060009"
    "6576746a3a683676"
    "59202020"
    "00080014"
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004"
    "e57a3bcf"
)

# RFC 5769 §2.2: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "8022000b"
    "7465737420766563746f7220"
    "00200008"
    "0001a147e112a643"
    "00080014"
    "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004"
    "c07d4c96"
)

# RFC 5769 §2.3: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "01010048"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "8022000b"
    "7465737420766563746f7220"
    "00200014"
    "0002a147"
    "0113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014"
    "a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004"
    "c8fb0b4c"
)

VECTORS = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE]


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def header(msg_type: int, length: int, cookie: int = stun.MAGIC_COOKIE) -> bytes:
    return struct.pack("!HHI", msg_type, length, cookie) + TID


def tlv(attr_type: int, value: bytes) -> bytes:
    return struct.pack("!HH", attr_type, len(value)) + value + b"\x00" * (-len(value) & 3)


def message(*attrs: bytes, msg_type: int = stun.BINDING_REQUEST) -> bytes:
    body = b"".join(attrs)
    return header(msg_type, len(body)) + body


# --- RFC 5769 vectors -------------------------------------------------------------


def test_sample_request() -> None:
    msg = stun.parse(SAMPLE_REQUEST)
    assert msg.msg_type == stun.BINDING_REQUEST
    assert msg.transaction_id == TID
    assert [t for t, _ in msg.attributes] == [
        stun.SOFTWARE,
        stun.PRIORITY,
        stun.ICE_CONTROLLED,
        stun.USERNAME,
        stun.MESSAGE_INTEGRITY,
        stun.FINGERPRINT,
    ]
    assert msg.get(stun.SOFTWARE) == b"STUN test client"
    assert msg.get(stun.USERNAME) == b"evtj:h6vY"
    assert msg.get(stun.PRIORITY) == bytes.fromhex("6e0001ff")
    assert msg.get(stun.ICE_CONTROLLED) == bytes.fromhex("932ff9b151263b36")
    assert msg.get(stun.XOR_MAPPED_ADDRESS) is None
    assert stun.verify_integrity(SAMPLE_REQUEST, msg, PASSWORD)
    assert stun.verify_fingerprint(SAMPLE_REQUEST, msg)
    assert not stun.verify_integrity(SAMPLE_REQUEST, msg, b"wrong password")


def test_sample_ipv4_response() -> None:
    msg = stun.parse(SAMPLE_IPV4_RESPONSE)
    assert msg.msg_type == stun.BINDING_SUCCESS
    assert msg.get(stun.SOFTWARE) == b"test vector"
    assert stun.verify_integrity(SAMPLE_IPV4_RESPONSE, msg, PASSWORD)
    assert stun.verify_fingerprint(SAMPLE_IPV4_RESPONSE, msg)
    value = msg.get(stun.XOR_MAPPED_ADDRESS)
    assert value is not None
    assert stun.decode_xor_address(value, msg.transaction_id) == ("192.0.2.1", 32853)
    assert stun.encode_xor_address("192.0.2.1", 32853, TID) == value


def test_sample_ipv6_response() -> None:
    msg = stun.parse(SAMPLE_IPV6_RESPONSE)
    assert msg.msg_type == stun.BINDING_SUCCESS
    assert stun.verify_integrity(SAMPLE_IPV6_RESPONSE, msg, PASSWORD)
    assert stun.verify_fingerprint(SAMPLE_IPV6_RESPONSE, msg)
    value = msg.get(stun.XOR_MAPPED_ADDRESS)
    assert value is not None
    host = "2001:db8:1234:5678:11:2233:4455:6677"
    assert stun.decode_xor_address(value, msg.transaction_id) == (host, 32853)
    assert stun.encode_xor_address(host, 32853, TID) == value


@pytest.mark.parametrize("vector", VECTORS)
def test_one_bit_corruption_fails_verification(vector: bytes) -> None:
    msg = stun.parse(vector)
    assert msg.integrity_offset is not None
    # Every covered byte of the header and the attributes before MESSAGE-INTEGRITY
    # (the length field at 2..3 would change the parse itself, so skip it).
    for index in [0, 1, *range(4, msg.integrity_offset)]:
        corrupted = flip_bit(vector, index, index % 8)
        try:
            bad = stun.parse(corrupted)
        except StunError:
            continue
        assert not stun.verify_integrity(corrupted, bad, PASSWORD), index
        assert not stun.verify_fingerprint(corrupted, bad), index
    # The HMAC itself, and the CRC itself.
    mac_byte = msg.integrity_offset + 4
    corrupted = flip_bit(vector, mac_byte)
    assert not stun.verify_integrity(corrupted, stun.parse(corrupted), PASSWORD)
    assert msg.fingerprint_offset is not None
    corrupted = flip_bit(vector, msg.fingerprint_offset + 7)
    bad = stun.parse(corrupted)
    assert stun.verify_integrity(corrupted, bad, PASSWORD)
    assert not stun.verify_fingerprint(corrupted, bad)


# --- encoding ----------------------------------------------------------------------


def test_encode_round_trip_with_integrity_and_fingerprint() -> None:
    attrs = [
        (stun.USERNAME, b"abc:defgh"),  # needs 3 bytes of padding
        (stun.PRIORITY, struct.pack("!I", 12345)),
        (stun.USE_CANDIDATE, b""),
        (stun.SOFTWARE, b"LiteSFU"),
    ]
    data = stun.encode(stun.BINDING_REQUEST, TID, attrs, integrity_key=b"secret")
    assert len(data) % 4 == 0
    msg = stun.parse(data)
    assert msg.msg_type == stun.BINDING_REQUEST
    assert msg.transaction_id == TID
    assert msg.attributes[:4] == attrs
    assert [t for t, _ in msg.attributes[4:]] == [stun.MESSAGE_INTEGRITY, stun.FINGERPRINT]
    assert stun.verify_integrity(data, msg, b"secret")
    assert stun.verify_fingerprint(data, msg)
    # Padding is zero.
    assert data[20 + 4 + 9 : 20 + 4 + 12] == b"\x00\x00\x00"


def test_encode_without_integrity_or_fingerprint() -> None:
    data = stun.encode(stun.BINDING_INDICATION, TID, [], fingerprint=False)
    assert data == header(stun.BINDING_INDICATION, 0)
    msg = stun.parse(data)
    assert msg.attributes == []
    assert not stun.verify_integrity(data, msg, b"key")
    assert not stun.verify_fingerprint(data, msg)

    data = stun.encode(stun.BINDING_REQUEST, TID, [(stun.SOFTWARE, b"x")])
    msg = stun.parse(data)
    assert msg.integrity_offset is None
    assert stun.verify_fingerprint(data, msg)
    # A manual CRC over everything before FINGERPRINT agrees.
    assert struct.unpack("!I", data[-4:])[0] == zlib.crc32(data[:-8]) ^ 0x5354554E


def test_encode_integrity_only() -> None:
    data = stun.encode(stun.BINDING_SUCCESS, TID, [], integrity_key=b"k", fingerprint=False)
    msg = stun.parse(data)
    assert msg.fingerprint_offset is None
    assert stun.verify_integrity(data, msg, b"k")
    assert not stun.verify_fingerprint(data, msg)


def test_encode_rejects_bad_transaction_id() -> None:
    with pytest.raises(ValueError):
        stun.encode(stun.BINDING_REQUEST, b"short", [])


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 8000),
        ("0.0.0.0", 0),
        ("255.255.255.255", 65535),
        ("::1", 5000),
        ("fe80::1234:5678:9abc:def0", 1),
    ],
)
def test_xor_address_round_trip(host: str, port: int) -> None:
    value = stun.encode_xor_address(host, port, TID)
    assert len(value) == (8 if "." in host else 20)
    assert stun.decode_xor_address(value, TID) == (host, port)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\x01\xa1",
        b"\x00\x01\xa1\x47\xe1\x12\xa6",  # IPv4 too short
        b"\x00\x01\xa1\x47\xe1\x12\xa6\x43\x00",  # IPv4 too long
        b"\x00\x02\xa1\x47" + b"\x00" * 15,  # IPv6 too short
        b"\x00\x03\xa1\x47\xe1\x12\xa6\x43",  # unknown family
    ],
)
def test_decode_xor_address_rejects(value: bytes) -> None:
    with pytest.raises(StunError):
        stun.decode_xor_address(value, TID)


def test_error_code_round_trip() -> None:
    for code, reason in [(400, "Bad Request"), (401, "Unauthorized"), (487, "Role Conflict")]:
        value = stun.encode_error_code(code, reason)
        assert value[:4] == bytes([0, 0, code // 100, code % 100])
        assert stun.decode_error_code(value) == (code, reason)
    with pytest.raises(ValueError):
        stun.encode_error_code(200, "OK")


@pytest.mark.parametrize("value", [b"", b"\x00\x00\x04", b"\x00\x00\x02\x00", b"\x00\x00\x04\x64"])
def test_decode_error_code_rejects(value: bytes) -> None:
    with pytest.raises(StunError):
        stun.decode_error_code(value)


# --- strict parsing ------------------------------------------------------------------

MI = tlv(stun.MESSAGE_INTEGRITY, b"\x00" * 20)
FP = tlv(stun.FINGERPRINT, b"\x00" * 4)
SOFT = tlv(stun.SOFTWARE, b"abc")

MALFORMED = {
    "empty": b"",
    "short header": header(1, 0)[:19],
    "top bits set": header(0x4001, 0),
    "bad cookie": header(1, 0, cookie=0x2112A443),
    "length too long": header(1, 4),
    "length too short": header(1, 0) + SOFT,
    "length not multiple of 4": header(1, 2) + b"\x00\x00",
    "truncated tlv": header(1, 4) + struct.pack("!HH", stun.SOFTWARE, 8),
    "value overruns": header(1, 8) + struct.pack("!HH", stun.SOFTWARE, 5) + b"abcd",
    "attribute after fingerprint": message(FP, SOFT),
    "two fingerprints": message(FP, FP),
    "attribute after integrity": message(MI, SOFT),
    "two integrities": message(MI, MI, FP),
    "short integrity": message(tlv(stun.MESSAGE_INTEGRITY, b"\x00" * 16)),
    "long fingerprint": message(tlv(stun.FINGERPRINT, b"\x00" * 8)),
    "short fingerprint": message(tlv(stun.FINGERPRINT, b"\x00" * 2)),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_parse_rejects_malformed(data: bytes) -> None:
    with pytest.raises(StunError):
        stun.parse(data)


def test_parse_accepts_the_allowed_orders() -> None:
    for data in [message(SOFT, MI, FP), message(SOFT, MI), message(SOFT, FP), message()]:
        msg = stun.parse(data)
        assert (msg.integrity_offset is not None) == (MI in data)
        assert (msg.fingerprint_offset is not None) == (FP in data)


def test_get_returns_first_occurrence() -> None:
    msg = stun.parse(message(tlv(stun.SOFTWARE, b"one"), tlv(stun.SOFTWARE, b"two")))
    assert msg.get(stun.SOFTWARE) == b"one"
    assert msg.attributes == [(stun.SOFTWARE, b"one"), (stun.SOFTWARE, b"two")]


def test_offsets_point_at_attribute_headers() -> None:
    data = message(SOFT, MI, FP)
    msg = stun.parse(data)
    assert msg.integrity_offset == 20 + 8
    assert msg.fingerprint_offset == 20 + 8 + 24
    assert data[msg.integrity_offset : msg.integrity_offset + 2] == b"\x00\x08"


# --- fuzzing -------------------------------------------------------------------------


def parse_or_stun_error(data: bytes) -> None:
    try:
        msg = stun.parse(data)
    except StunError:
        return
    # Whatever parses can be verified without raising.
    assert isinstance(stun.verify_integrity(data, msg, PASSWORD), bool)
    assert isinstance(stun.verify_fingerprint(data, msg), bool)
    assert msg.transaction_id == data[8:20]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_parse_arbitrary_bytes_raises_only_stun_error(data: bytes) -> None:
    parse_or_stun_error(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_parse_arbitrary_body_behind_valid_header(body: bytes) -> None:
    # Random attribute soup behind a header that passes the header checks.
    body = body[: len(body) - len(body) % 4]
    parse_or_stun_error(header(stun.BINDING_REQUEST, len(body)) + body)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(VECTORS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    st.one_of(st.none(), st.integers(0, 120)),
    st.booleans(),
)
def test_parse_mutated_vectors_raises_only_stun_error(
    vector: bytes, edits: list[tuple[int, int]], keep: int | None, fix_length: bool
) -> None:
    data = bytearray(vector)
    for index, value in edits:
        if index < len(data):
            data[index] = value
    if keep is not None:
        del data[keep:]
    if fix_length and len(data) >= 20:
        # Keep the header consistent so the attribute walk sees the damage.
        struct.pack_into("!H", data, 2, len(data) - 20)
    parse_or_stun_error(bytes(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.binary(min_size=12, max_size=12))
def test_attribute_decoders_raise_only_stun_error(value: bytes, transaction_id: bytes) -> None:
    try:
        code, _ = stun.decode_error_code(value)
    except StunError:
        pass
    else:
        assert 300 <= code <= 699
    try:
        host, port = stun.decode_xor_address(value, transaction_id)
    except StunError:
        pass
    else:
        assert stun.decode_xor_address(
            stun.encode_xor_address(host, port, transaction_id), transaction_id
        ) == (host, port)
