"""A coverage-guided fuzz target (atheris/libFuzzer) for every parser that reads client bytes.

Not part of the test suite: it runs until stopped and keeps a corpus. The first input byte
picks the parser, the rest is its input; any exception other than the parser's own error is a
finding. Run it from the repository root:

    pip install atheris
    python fuzz/fuzz_parsers.py -max_total_time=600 fuzz/corpus
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from sfu.io.udp import UdpEndpoint
    from sfu.protocol.certificate import Certificate
    from sfu.protocol.datachannel import DcepError, parse_open
    from sfu.protocol.dtls import DtlsEndpoint
    from sfu.protocol.keyframes import keyframe_detector
    from sfu.protocol.sctp import Association
    from sfu.protocol.sctp_reconfig import parse_reset_request
    from sfu.session.table import SessionTable
    from sfu.wire import red, room_message, rtp, sctp, stun
    from sfu.wire.vp9 import parse_vp9, vp9_sizes
    from signaling.sdp.negotiate import NegotiationError, negotiate_play, negotiate_publish
    from signaling.sdp.parse import SdpError, parse_offer
    from signaling.sdp.trickle import FragmentError, parse_sdpfrag
    from signaling.security.auth import verify

CERTIFICATE = Certificate.generate()


def fuzz_stun(data: bytes) -> None:
    with contextlib.suppress(stun.StunError):
        stun.parse(data)


def fuzz_rtp(data: bytes) -> None:
    for parse in (
        rtp.header_length,
        rtp.payload_bounds,
        rtp.strip_extensions,
        rtp.parse_extensions,
    ):
        with contextlib.suppress(rtp.RtpError):
            parse(data)


def fuzz_rtcp(data: bytes) -> None:
    try:
        packets = rtp.split_rtcp(data)
    except rtp.RtpError:
        return
    helpers = (
        rtp.feedback_media_ssrc,
        rtp.fir_targets,
        rtp.nack_sequence_numbers,
        rtp.parse_sender_info,
    )
    for packet in packets:
        for helper in helpers:
            with contextlib.suppress(rtp.RtpError):
                helper(packet)


def fuzz_payloads(data: bytes) -> None:
    """The payload readers of issue 27: VP9 descriptors, RED blocks, H264/H265 NAL units;
    none may raise or point past the end."""
    parse_vp9(data, 0)
    vp9_sizes(data, 0)
    found = red.primary_block(data, 0, len(data))
    assert found is None or found[0] <= len(data)
    for codec in ("H264", "H265", "VP8", "VP9"):
        keyframe_detector(codec)(data)


def fuzz_dtls(data: bytes) -> None:
    endpoint = DtlsEndpoint(CERTIFICATE, is_server=True, remote_fingerprints=[("sha-256", "00")])
    endpoint.receive(data, 0.0)  # documented never to raise


def fuzz_sdp(data: bytes) -> None:
    try:
        offer = parse_offer(data.decode("utf-8", "replace"))
    except SdpError:
        return
    for negotiate in (negotiate_publish, negotiate_play):
        with contextlib.suppress(NegotiationError):
            negotiate(offer)


def fuzz_sdpfrag(data: bytes) -> None:
    with contextlib.suppress(FragmentError):
        parse_sdpfrag(data.decode("utf-8", "replace"))


def fuzz_token(data: bytes) -> None:
    assert verify("secret", data.decode("utf-8", "replace"), 0.0) is None


def fuzz_sctp(data: bytes) -> None:
    """The chunk readers, then a listening association, over one packet (CRC made right, so
    the input reaches past the checksum)."""
    if len(data) >= 12:
        data = sctp.encode_packet(*struct.unpack_from("!HHI", data), [data[12:]])
    Association(random.Random(0)).receive(data, 0.0)  # documented never to raise
    with contextlib.suppress(sctp.SctpError):
        for _, flags, body in sctp.parse_packet(data).chunks:
            with contextlib.suppress(sctp.SctpError):
                sctp.parse_data(flags, body)
            for read in (sctp.parse_init, sctp.parse_sack, sctp.parse_forward_tsn):
                with contextlib.suppress(sctp.SctpError):
                    read(body)
            with contextlib.suppress(sctp.SctpError):
                parse_reset_request(body)
    with contextlib.suppress(DcepError):
        parse_open(data)


def fuzz_room_message(data: bytes) -> None:
    with contextlib.suppress(room_message.BadRoomMessage):
        room_message.stamp_text("alice", room_message.parse_text(data, 100))


class Endpoint:
    """One UDP endpoint with an empty session table; its answers go to our own socket."""

    def __init__(self) -> None:
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.endpoint = UdpEndpoint(SessionTable())
        self.endpoint.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.endpoint.sock.bind(("127.0.0.1", 0))
        self.endpoint.sock.setblocking(False)

    def __call__(self, data: bytes) -> None:
        self.endpoint.datagram_received(data, self.sink.getsockname(), 0.0)
        assert not self.endpoint.sessions.by_addr


TARGETS: list[Callable[[bytes], None]] = [
    fuzz_stun,
    fuzz_rtp,
    fuzz_rtcp,
    fuzz_payloads,
    fuzz_dtls,
    fuzz_sdp,
    fuzz_sdpfrag,
    fuzz_token,
    fuzz_sctp,
    fuzz_room_message,
    Endpoint(),
]


def one_input(data: bytes) -> None:
    if data:
        TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
