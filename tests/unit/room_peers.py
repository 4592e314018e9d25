"""Room participants in the harness: a WHIP publisher of ROOM/NAME and a subscriber whose
packets are kept, and the checks the room scenarios share (who is on which slot)."""

from __future__ import annotations

from bench.client import STAMP, STAMP_OFFSET
from bench.sdp import AUDIO_PT, VIDEO_PT, parse_answer
from sfu.protocol.keyframes import vp8_keyframe_start
from sfu.wire import rtp
from tests.harness import Harness, Peer, record_rtp

TWO_EACH = ("audio", "video", "audio", "video")


class Participant:
    """One participant: its WHIP publisher of ROOM/NAME and its subscriber, whose decrypted
    packets are kept to tell which publisher each came from."""

    _answer: tuple[str, dict[str, int]] = ("", {})  # the last answer and its slots' SSRCs

    def __init__(
        self,
        h: Harness,
        room: str,
        name: str,
        kinds: tuple[str, ...],
        publish: bool = True,
        audio_level: bool = False,
        data: bool = False,
    ) -> None:
        self.name = name
        self.publisher: Peer | None = None
        if publish:
            self.publisher = h.publisher(f"{room}/{name}", audio_level=audio_level)
        self.subscriber = h.subscriber(room, name, kinds, data=data)
        self.packets = record_rtp(self.subscriber)

    @property
    def peers(self) -> list[Peer]:
        return [p for p in (self.publisher, self.subscriber) if p is not None]

    def view(self, h: Harness):
        view = h.router.room_view(self.subscriber.session.id)
        assert view is not None
        return view

    def slot_ssrcs(self) -> dict[str, int]:
        """Each slot's SSRC, from the latest answer (parsed once per answer)."""
        text = self.subscriber.answer_text
        if self._answer[0] != text:
            self._answer = (text, parse_answer(text).ssrcs)
        return self._answer[1]

    def on_slot(self, mid: str, since: float = 0.0) -> list[tuple[int, int, bool]]:
        """(sequence number, publisher index, keyframe start) of the media sent on a slot."""
        ssrc = self.slot_ssrcs()[mid]
        found = []
        for at, plain in self.packets:
            pt = plain[1] & 0x7F
            if at < since or int.from_bytes(plain[8:12], "big") != ssrc:
                continue
            if pt not in (AUDIO_PT, VIDEO_PT):
                continue  # RTX
            start, end = rtp.payload_bounds(plain)
            index = STAMP.unpack_from(plain, start + STAMP_OFFSET)[0]
            keyframe = pt == VIDEO_PT and vp8_keyframe_start(plain[start:end])
            found.append((plain[2] << 8 | plain[3], index, keyframe))
        return found


def join(h: Harness, name: str, kinds: tuple[str, ...] = TWO_EACH, **options) -> Participant:
    participant = Participant(h, "r", name, kinds, **options)
    h.connect(*participant.peers)
    return participant


def index_of(participant: Participant) -> int:
    assert participant.publisher is not None and participant.publisher.media is not None
    return participant.publisher.media.index


def assigned(view) -> dict[tuple[str, str], str]:
    """(participant, kind) -> mid of a view's assigned slots."""
    return {(s.participant, s.kind): s.mid for s in view.slots if s.participant is not None}


def assert_receives_from(h: Harness, viewer: Participant, others: list[Participant]) -> None:
    """Every other participant's audio and video is on a slot of `viewer`, and that slot
    carries its media only."""
    slots = assigned(viewer.view(h))
    for other in others:
        for kind in ("audio", "video"):
            mid = slots[(other.name, kind)]
            got = viewer.on_slot(mid)
            assert len(got) > 10, (viewer.name, other.name, kind)
            assert {index for _, index, _ in got} == {index_of(other)}
    assert viewer.name not in {who for who, _ in slots}


def leave(h: Harness, *peers: Peer) -> None:
    """End each peer's session as its DELETE does, and take the peer off the network (a
    peer that left costs the harness nothing more)."""
    for peer in peers:
        h.router.close(peer.session.id, "DELETE")
        peer.silent = True
        h.network.peers.pop(peer.address, None)
