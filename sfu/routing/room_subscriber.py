"""A subscribe session's media handler: a Player whose tracks are slots.

Each recvonly m-line of the subscriber's offer is a slot (a SubscriberTrack) that carries one
other participant's audio or video at a time. A slot is re-pointed from one participant to
another without renegotiation: its SSRC, sequence numbers and timestamps continue across
sources as they do across a simulcast switch (SubscriberTrack.detach/start), and the new
source is asked for a keyframe. Feedback, NACKs, reports, the estimate and the per-track layer
choice are the Player's own; only its keyframe requests go to each slot's own publisher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sfu.media import AUDIO, VIDEO, PeerParams
from sfu.protocol.simulcast import Choice, ranked
from sfu.routing.context import HandlerContext
from sfu.routing.player import Player, PlayerStream
from sfu.routing.publisher import Publisher
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.room_stats import SlotView, TrackPrefs
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.session.peer import RTCP_SENDERS_PER_MLINE, PeerSession
from sfu.session.transport import SessionState, Transport

KINDS = (AUDIO, VIDEO)
NO_PREFS = TrackPrefs()


class RoomSource(NamedTuple):
    """One participant's media a slot may carry: its audio track, or its video group (the
    simulcast layers of one m-line), and the publisher that sends it."""

    participant: str
    kind: str
    group: list[PublisherTrack]
    publisher: Publisher


def check_renegotiation(old: Sequence, new: Sequence, max_slots: int) -> None:
    """ValueError unless `new` keeps every earlier m-line (TrackSpec) in order, mid and kind,
    only appends, repeats no mid and stays within `max_slots` (RFC 8829 §5.2.2)."""
    if len(new) < len(old):
        raise ValueError(f"the offer has {len(new)} m-lines, fewer than the {len(old)} before")
    for before, after in zip(old, new, strict=False):
        if before.mid != after.mid:
            raise ValueError(f"m-line {before.mid!r} was removed or moved")
        if before.kind != after.kind:
            raise ValueError(f"m-line {before.mid!r} changed kind")
    check_slots(new, max_slots)


def check_slots(tracks: Sequence, max_slots: int) -> None:
    """ValueError for a subscribe offer with more slots than the room could fill, or a mid
    twice (a slot is named by its mid)."""
    if len(tracks) > max_slots:
        raise ValueError(f"the offer has {len(tracks)} m-lines; a room fills at most {max_slots}")
    if len({t.mid for t in tracks}) < len(tracks):
        raise ValueError("the offer repeats a mid")


class RoomSubscriber(Player):
    """The media handler of one participant's subscribe session."""

    def __init__(
        self, context: HandlerContext, room: PlayerStream, session: Transport, participant: str
    ) -> None:
        super().__init__(context, room, session)
        self.participant = participant
        # slot -> the participant whose media it carries and that participant's publisher.
        self.feeds: dict[SubscriberTrack, tuple[str, Publisher]] = {}
        self.prefs: dict[str, TrackPrefs] = {}
        # Slots per kind it should offer in all: at least those it has.
        self.wanted = self.offered()

    def offered(self) -> dict[str, int]:
        return {kind: sum(1 for t in self.tracks if t.kind == kind) for kind in KINDS}

    def flush_requests(self, asked: list[SubscriberTrack]) -> None:
        """Send the keyframe requests of the slots a PLI or FIR named, each to the publisher
        of its own source."""
        for publisher in {self.feeds[t][1] for t in asked if t in self.feeds}:
            publisher.flush()

    def assign(self, sources: Sequence[RoomSource], now: float) -> None:
        """Give each source it should get a slot of its kind: one it holds keeps it, a new
        one takes the first free slot (pinned participants first); free what is no longer
        wanted. Sources left without a slot raise `wanted`."""
        wanted = [
            s
            for s in sources
            if s.participant != self.participant and not self.prefs_for(s.participant).off
        ]
        wanted.sort(key=lambda s: not self.prefs_for(s.participant).pinned)  # stable
        offered = self.offered()
        if self.session.state is not SessionState.CONNECTED:
            needed = {kind: sum(1 for s in wanted if s.kind == kind) for kind in KINDS}
            self.wanted = {kind: max(offered[kind], needed[kind]) for kind in KINDS}
            return
        self.codec_mismatch.clear()  # found again below while it lasts
        by_key = {(s.participant, s.kind): s for s in wanted}
        for slot, (who, _) in list(self.feeds.items()):
            if (who, slot.kind) not in by_key:
                self.release(slot)
        held = {(who, slot.kind): slot for slot, (who, _) in self.feeds.items()}
        free = {
            kind: [t for t in self.tracks if t.kind == kind and t not in self.feeds]
            for kind in KINDS
        }
        unmet = dict.fromkeys(KINDS, 0)
        flush: set[Publisher] = set()
        for source in wanted:
            slot = held.get((source.participant, source.kind))
            if slot is None:
                slot = next(
                    (t for t in free[source.kind] if t.codec_for(source.group[0].codec)), None
                )
                if slot is None:
                    if free[source.kind]:
                        self.codec_mismatch[source.kind] = source.group[0].codec.name
                    else:
                        unmet[source.kind] += 1
                    continue
                free[source.kind].remove(slot)
            if self._feed(slot, source, now):
                flush.add(source.publisher)
        for publisher in flush:
            publisher.flush()
        self.wanted = {kind: offered[kind] + unmet[kind] for kind in KINDS}

    def _feed(self, slot: SubscriberTrack, source: RoomSource, now: float) -> bool:
        """Point `slot` at `source`, on its lowest layer unless it plays one of its layers
        already; True when it asked the source for a keyframe."""
        self.feeds[slot] = (source.participant, source.publisher)
        prefs = self.prefs_for(source.participant)
        slot.choice = Choice(max_width=prefs.max_width, max_height=prefs.max_height)
        group = source.group
        if slot.source in group:
            return False
        layer = ranked(group)[0]
        codec = slot.codec_for(layer.codec)
        assert codec is not None  # assign() chose the slot for this codec
        slot.detach()
        slot.attach(layer, codec, self.context.sendto_for(self.session))
        layer.request_keyframe(now)
        return True

    def release(self, slot: SubscriberTrack) -> None:
        """Free a slot: nothing is sent on it until it carries another source."""
        slot.detach()
        del self.feeds[slot]

    def release_all(self) -> None:
        for slot in list(self.feeds):
            self.release(slot)

    def prefs_for(self, participant: str) -> TrackPrefs:
        return self.prefs.get(participant, NO_PREFS)

    def renegotiate(self, peer: PeerParams, max_slots: int) -> None:
        """Take a new offer's appended m-lines as new slots; ValueError (nothing changed)
        when it removed, moved or changed an earlier one, or when it changed the DTLS
        fingerprint (the session's keys stay). The earlier m-lines keep what they had."""
        session = self.session
        old = session.peer.tracks
        check_renegotiation(old, peer.tracks, max_slots)
        if sorted(peer.fingerprints) != sorted(session.peer.fingerprints):
            raise ValueError("the offer changed the DTLS fingerprint")
        added = [
            SubscriberTrack(session, spec, self.context.rng) for spec in peer.tracks[len(old) :]
        ]
        self.tracks += added
        self.by_ssrc.update((t.ssrc, t) for t in added)
        session.peer = PeerParams(
            peer.ice_ufrag, peer.ice_pwd, peer.fingerprints, [*old, *(t.spec for t in added)]
        )
        if isinstance(session, PeerSession) and session.streams is not None:
            # A receiver SSRC per m-line (Firefox): room for the new m-lines' too.
            session.streams.allow_senders(RTCP_SENDERS_PER_MLINE * len(self.tracks))

    def slots(self) -> tuple[SlotView, ...]:
        """Every slot, in m-line order, with whom it carries."""
        views = []
        for slot in self.tracks:
            feed = self.feeds.get(slot)
            source = slot.pending or slot.source
            views.append(
                SlotView(
                    mid=slot.spec.mid,
                    kind=slot.kind,
                    participant=feed[0] if feed is not None else None,
                    paused=False,
                    rid=source.rid if source is not None and feed is not None else None,
                )
            )
        return tuple(views)

    def allocated(self) -> float:
        """Bits per second of what its slots play now (their sources' last measured rates)."""
        return sum(s.source.bitrate for s in self.feeds if s.source is not None)
