"""A subscribe session's media handler: a Player whose tracks are slots.

Each recvonly m-line of the subscriber's offer is a slot (a SubscriberTrack) that carries one
other participant's audio or video at a time. A slot is re-pointed from one participant to
another without renegotiation: its SSRC, sequence numbers and timestamps continue across
sources as they do across a simulcast switch (SubscriberTrack.detach/start), and the new
source is asked for a keyframe. Feedback, NACKs, reports and the estimate are the Player's
own; its keyframe requests go to each slot's own publisher, and the layers come from sharing
the one estimate among all slots by priority (sfu.protocol.allocation), not per track. A video
that does not fit is paused, and the first paused one is tested by probe or trial until it fits
(sfu.protocol.resume): nothing else would show that the link has room again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from sfu.media import AUDIO, VIDEO, PeerParams, TrackSpec
from sfu.protocol.allocation import (
    PAUSED,
    Allocation,
    LayerOption,
    Priority,
    Want,
    Wish,
    allocate,
    simulcast_options,
)
from sfu.protocol.probe import DELIVERED_SHARE, Probe, probe_rate
from sfu.protocol.resume import TRIAL_LOSS, Trial, probe_wait, trial_wait
from sfu.protocol.simulcast import Choice, ranked
from sfu.protocol.speakers import SpeakerUpdate
from sfu.routing.context import HandlerContext
from sfu.routing.player import Player, PlayerStream
from sfu.routing.publisher import Publisher
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.room_data import kept_data
from sfu.routing.room_stats import OwnMedia, SlotView, TrackPrefs
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.session.peer import RTCP_SENDERS_PER_MLINE, PeerSession
from sfu.session.transport import SessionState, Transport

KINDS = (AUDIO, VIDEO)
NO_PREFS = TrackPrefs()


class RoomSource(NamedTuple):
    """What a slot may carry: a participant's audio, camera or screen, and its publisher."""

    participant: str
    kind: str
    group: list[PublisherTrack]
    publisher: Publisher
    screen: bool = False

    @property
    def track(self) -> str:
        """What the source is to a page: "audio", "video" (the camera) or "screen"."""
        return "screen" if self.screen else self.kind


def check_renegotiation(old: Sequence[TrackSpec], new: Sequence[TrackSpec], max_slots: int) -> None:
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


def check_slots(tracks: Sequence[TrackSpec], max_slots: int) -> None:
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
        self.feeds: dict[SubscriberTrack, RoomSource] = {}  # slot -> the media it carries
        self.paused: set[SubscriberTrack] = set()  # fed slots the allocation sends nothing
        self.allocation = Allocation((), 0, 0)  # the last one, once a second
        self.prefs: dict[str, TrackPrefs] = {}
        self.own_media = OwnMedia()  # what this participant says of its own publication
        # The room's speakers, most active first, and its recent ones, latest first.
        self.speakers = SpeakerUpdate()
        # Slots per kind it should offer in all: at least those it has.
        self.wanted = self.offered()
        # Bringing paused video back (sfu.protocol.resume): the running trial, the videos
        # trials proved when only REMB tells, and when to probe or try next.
        self.trial: Trial | None = None
        self.held = 0
        self.trials = 0
        self.failed_trials = 0
        self.probe_wait = probe_wait()
        self.trial_wait = trial_wait()
        self._padding_on: SubscriberTrack | None = None  # the slot a resume probe pads on

    def offered(self) -> dict[str, int]:
        return {kind: sum(1 for t in self.tracks if t.kind == kind) for kind in KINDS}

    def flush_requests(self, asked: list[SubscriberTrack]) -> None:
        """Send the keyframe requests of the slots a PLI or FIR named to their publishers."""
        for publisher in {self.feeds[t].publisher for t in asked if t in self.feeds}:
            publisher.flush()

    def assign(self, sources: Sequence[RoomSource], now: float) -> None:
        """Give each source it should get a slot of its kind: one it holds keeps it, a new
        one takes the first free slot (screens and pinned participants first); free what is
        no longer wanted. Sources left without a slot raise `wanted`."""
        wanted = [
            s
            for s in sources
            if s.participant != self.participant and not self.prefs_for(s.participant).off
        ]
        wanted.sort(key=lambda s: not (s.screen or self.prefs_for(s.participant).pinned))
        offered = self.offered()
        if self.session.state is not SessionState.CONNECTED:
            needed = {kind: sum(1 for s in wanted if s.kind == kind) for kind in KINDS}
            self.wanted = {kind: max(offered[kind], needed[kind]) for kind in KINDS}
            return
        self.codec_mismatch.clear()  # found again below while it lasts
        by_key = {(s.participant, s.track): s for s in wanted}
        for slot, fed in list(self.feeds.items()):
            if (fed.participant, fed.track) not in by_key:
                self.release(slot)
        held = {(fed.participant, fed.track): slot for slot, fed in self.feeds.items()}
        free = {
            kind: [t for t in self.tracks if t.kind == kind and t not in self.feeds]
            for kind in KINDS
        }
        unmet = dict.fromkeys(KINDS, 0)
        flush: set[Publisher] = set()
        for source in wanted:
            slot = held.get((source.participant, source.track))
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
        already or is paused; True when it asked the source for a keyframe."""
        before = self.feeds.get(slot)
        source.publisher.stream.take_slot(slot, before.publisher.stream if before else None)
        self.feeds[slot] = source
        prefs = self.prefs_for(source.participant)
        slot.choice = Choice(max_width=prefs.max_width, max_height=prefs.max_height)
        if slot.source in source.group or slot in self.paused:
            return False
        self._start(slot, ranked(source.group)[0], now)
        return True

    def _start(self, slot: SubscriberTrack, layer: PublisherTrack, now: float) -> None:
        """Play `layer` on `slot` from its next keyframe, asked for now; the slot's numbers
        continue from whatever it played before."""
        codec = slot.codec_for(layer.codec)
        assert codec is not None  # assign() chose the slot for this codec
        slot.detach()
        slot.attach(layer, codec, self.context.sendto_for(self.session))
        slot.fraction_lost = 0.0  # the last report spoke of what it played before, if anything
        layer.request_keyframe(now, start=True)

    def release(self, slot: SubscriberTrack) -> None:
        """Free a slot: nothing is sent on it until it carries another source."""
        slot.detach()
        self.feeds.pop(slot).publisher.stream.slot_left(slot)
        self.paused.discard(slot)

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
        new = peer.tracks[len(old) :]
        kept = replace(peer, tracks=[*old, *new], data=kept_data(session.peer.data, peer.data))
        added = [SubscriberTrack(session, spec, self.context.rng) for spec in new]
        self.tracks += added
        self.by_ssrc.update((t.ssrc, t) for t in added)
        session.peer = kept
        if isinstance(session, PeerSession) and session.streams is not None:
            # A receiver SSRC per m-line (Firefox): room for the new m-lines' too.
            session.streams.allow_senders(RTCP_SENDERS_PER_MLINE * len(self.tracks))

    def slots(self) -> tuple[SlotView, ...]:
        """Every slot, in m-line order, with whom it carries and the layer it plays."""
        views = []
        for slot in self.tracks:
            fed = self.feeds.get(slot)
            source = slot.pending or slot.source
            views.append(
                SlotView(
                    mid=slot.spec.mid,
                    kind=slot.kind,
                    participant=fed.participant if fed is not None else None,
                    paused=slot in self.paused,
                    rid=source.rid if source is not None and fed is not None else None,
                    screen=fed is not None and fed.screen,
                )
            )
        return tuple(views)

    # -- sharing the downlink (sfu.protocol.allocation), instead of Player's per-track choice --

    @property
    def adaptive(self) -> bool:
        """Whenever it carries anything: its estimate shares the downlink among the slots."""
        return bool(self.feeds)

    def adapt(self, now: float) -> None:
        """Once a second, share the budget among the fed slots by priority: a paused slot
        stops (nothing is sent) and resumes from a keyframe once it fits again, or on trial;
        a simulcast slot moves to its granted layer, down at once, up as LayerPace allows."""
        slots = [slot for slot in self.tracks if slot in self.feeds]
        wants = [self._want(slot) for slot in slots]
        self._judge(now)
        self.allocation = allocate(self.estimate(), wants, self._shown())
        if self._test_paused(now):
            self.allocation = allocate(self.estimate(), wants, self._shown())  # and on trial
        moves = set()
        flush: set[Publisher] = set()
        for slot, grant in zip(slots, self.allocation.grants, strict=True):
            source = self.feeds[slot]
            if grant.state == PAUSED:
                if slot not in self.paused:
                    slot.detach()
                    self.paused.add(slot)
                continue
            if grant.layer is None:
                continue  # nothing heard of its layers yet: it stays as it is
            target = next(t for t in source.group if t.rid == grant.layer.rid)
            if slot in self.paused:
                self.paused.discard(slot)
                self._start(slot, target, now)
                flush.add(source.publisher)
                continue
            current = slot.pending or slot.source
            if current is None or current is target or current not in source.group:
                continue
            order = ranked(source.group)
            up = order.index(target) > order.index(current)
            if not up or self.pace.allows_upgrade(now):
                slot.switch_to(target, now)
                moves.add(up)
        for publisher in flush:
            publisher.flush()
        if moves:
            self.pace.changed(False not in moves, now)
        self.bwe.held_to_delivered = bool(self.paused)  # only a probe or trial proves more

    # -- bringing paused video back (sfu.protocol.resume) --

    def _shown(self) -> int:
        """The videos shown whatever the estimate: those on trial, or proved by one."""
        return max(self.held, self.trial.videos if self.trial is not None else 0)

    def _loss(self) -> float:
        """The worst fraction lost the receiver reported of the slots that play."""
        return max((t.fraction_lost for t in self.tracks if t.started), default=0.0)

    def _judge(self, now: float) -> None:
        """End a trial that failed or lasted; at a lossy report, hold one video fewer (the
        lowest priority pauses first) and wait longer before the next trial."""
        loss, trial = self._loss(), self.trial
        if trial is not None:
            verdict = trial.verdict(now, self.bwe.overuses, self.bwe.estimate, loss)
            if verdict is None:
                return
            self.trial = None
            if verdict:
                self.trial_wait.passed(now)
                if self.bwe.feedback_used:  # it carried the allocation: start from there
                    self._proven(self.allocation.allocated)
                else:
                    self.held = trial.videos
            else:
                self.failed_trials += 1
                self.trial_wait.failed(now)
        elif self.held and loss > TRIAL_LOSS:
            self.held -= 1
            self.trial_wait.failed(now)

    def _test_paused(self, now: float) -> bool:
        """Once its wait is over, test the budget that shows the first paused video: by
        probe when this subscriber can be probed, else on trial; True when a trial began."""
        if self.trial is not None or self.probe is not None:
            return False
        resume = self.allocation.resume
        if resume is None:
            self.probe_wait.idle()
            self.trial_wait.idle()
            return False
        pad = self._pad_slot()
        if pad is not None:  # (note_sent starts a probe due between allocations)
            if self.probe_wait.due(now):
                target = resume[1] / DELIVERED_SHARE  # one that holds delivered the budget
                rate = probe_rate(target, self.allocation.allocated)
                self.probe = Probe(target, rate, now, self.bwe.overuses, self.bwe.delay_estimate)
                self._padding_on = pad
                self.probes += 1
            return False
        self.probe_wait.idle()
        if not self.trial_wait.due(now):
            return False
        bwe = self.bwe
        floor = bwe.delay_estimate if bwe.feedback_used else 0.0
        self.trial = Trial(self.allocation.shown + 1, now, bwe.overuses, floor)
        self.trials += 1
        return True

    def note_sent(self, now: float) -> None:
        """Every feedback tick; a due resume probe starts now, to find a lifted cap sooner."""
        super().note_sent(now)
        due = self.probe_wait.at
        if self.probe is None and due is not None and now >= due:
            self.adapt(now)

    def _pad_slot(self) -> SubscriberTrack | None:
        """A video slot to pad on, a playing one first: a paused one will do (its RTX stream
        is negotiated all the same), so a subscriber with every video paused is probed too."""
        slots = [t for t in self.tracks if t.kind == VIDEO and t in self.feeds and self._can_pad(t)]
        return next((t for t in slots if t.started), slots[0] if slots else None)

    def _probe_track(self) -> SubscriberTrack | None:
        """The slot a resume probe pads on, while a video is paused and the slot is fed."""
        pad = self._padding_on
        return pad if self.paused and pad is not None and pad in self.feeds else None

    def _probe_passed(self, probe: Probe, now: float) -> None:
        """The link delivered the first paused video's budget: start from there, resume now."""
        self.probe_wait.passed(now)
        self._proven(probe.delivered)
        self.adapt(now)

    def _probe_failed(self, now: float) -> None:
        self.probe_wait.failed(now)

    def _proven(self, rate: float) -> None:
        """A probe or trial showed the link carries `rate`: the send-side estimate starts there."""
        self.bwe.delay_estimate = max(self.bwe.delay_estimate, rate)

    def _want(self, slot: SubscriberTrack) -> Want:
        """What the allocator needs of one fed slot: its source's layers and priority."""
        source = self.feeds[slot]
        prefs = self.prefs_for(source.participant)
        if len(source.group) > 1:
            layers = simulcast_options(source.group)
        else:
            track = source.group[0]
            layers = (LayerOption(0, None, math.ceil(track.bitrate), track.width, track.height),)
        speakers = self.speakers
        rank = 0
        if prefs.pinned or source.screen:
            priority = Priority.PINNED
        elif source.participant in speakers.active:
            priority = Priority.SPEAKER
        elif source.participant in speakers.recent:
            priority, rank = Priority.RECENT, speakers.recent.index(source.participant)
        else:
            priority = Priority.OTHER
        wish = Wish(max_width=prefs.max_width, max_height=prefs.max_height)
        return Want(slot.spec.mid, slot.kind, layers, priority, rank, wish)
