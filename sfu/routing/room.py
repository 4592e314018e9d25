"""Rooms: the subscribe sessions of their participants, and the streams they publish.

Rooms and streams are one namespace: participant P of room R publishes the plain stream "R/P"
(a WHIP session, a relay, any publisher), so a WHEP player or a relay sees it as any stream.
A room exists while one of its participants subscribes; it learns which of its streams are
live from the streams themselves (Rooms.stream_changed) and gives every subscriber a slot for
each other participant's audio and video (Room.sync).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

from sfu.config import MediaConfig
from sfu.media import AUDIO, VIDEO
from sfu.protocol.speakers import SpeakerDetector, SpeakerUpdate
from sfu.routing.room_data import RoomData
from sfu.routing.room_stats import (
    OwnMedia,
    ParticipantView,
    RoomStats,
    RoomView,
    SubscriberStats,
)
from sfu.routing.room_subscriber import RoomSource, RoomSubscriber
from sfu.routing.stream import Stream
from sfu.session.table import SessionTable
from sfu.session.transport import SessionState

# Slots a subscriber may offer beyond two per participant the room can hold (an audio and a
# video each): room for an offer made while someone left and another joined.
SPARE_SLOTS = 4
NOTHING_SAID = OwnMedia()


class ParticipantBusy(Exception):
    """That participant already has a subscribe session in the room."""


class RoomFull(Exception):
    """The room holds MediaConfig.max_room_participants participants already."""


def max_slots(max_participants: int) -> int:
    """The most m-lines a subscribe offer may have: a slot per kind per other participant."""
    return 2 * max_participants + SPARE_SLOTS


def room_member(stream: str) -> tuple[str, str] | None:
    """(room, participant) of a stream named "ROOM/PARTICIPANT"; None for any other name."""
    room, sep, participant = stream.partition("/")
    if not sep or not room or not participant or "/" in participant:
        return None
    return room, participant


class Room:
    """One room: its subscribers by participant and its participants' live streams. It is
    the "stream" of its subscribers' Players (player_ready, player_gone)."""

    def __init__(
        self,
        name: str,
        live: dict[str, Stream],
        on_empty: Callable[[Room], None],
        data: RoomData,
    ) -> None:
        self.name = name
        self.data = data  # its participants' data channels
        self.live = live  # participant -> its stream, while the stream's publisher is live
        self.subscribers: dict[str, RoomSubscriber] = {}
        self.changed = False  # a stream went live or away since the last sync
        self._on_empty = on_empty
        # Who speaks, from the audio levels of the live publishers that send them.
        self.detector = SpeakerDetector()

    def stream_changed(self, participant: str, stream: Stream) -> None:
        if stream.live_publisher() is not None:
            self.live[participant] = stream
            self._listen(participant, stream, True)
        elif self.live.get(participant) is stream:
            del self.live[participant]
            self._tell_speakers(self.detector.remove(participant))
        self.changed = True

    def _listen(self, participant: str, stream: Stream, on: bool) -> None:
        """Have the live publisher of `stream` give its audio levels to the speaker detector
        (when it negotiated them), or stop."""
        publisher = stream.live_publisher()
        if publisher is not None and publisher.audio_level_id:
            observe = partial(self.detector.observe, participant) if on else None
            publisher.on_audio_level = observe

    def listen_all(self, on: bool) -> None:
        """Start or stop hearing every live participant (the room is kept or forgotten)."""
        for participant, stream in self.live.items():
            self._listen(participant, stream, on)

    def hear(self, now: float) -> None:
        """When the detector's window is due: judge it, and tell the subscribers a change."""
        due = self.detector.next_timer()
        if due is not None and now >= due:
            self._tell_speakers(self.detector.handle_timer(now))

    def _tell_speakers(self, update: SpeakerUpdate | None) -> None:
        if update is not None:
            for subscriber in self.subscribers.values():
                subscriber.speakers = update

    def own_media(self, participant: str) -> OwnMedia:
        """What `participant` said of its publication (nothing said: all on, no screen)."""
        subscriber = self.subscribers.get(participant)
        return subscriber.own_media if subscriber is not None else NOTHING_SAID

    def sources(self) -> list[RoomSource]:
        """Each live participant's first audio track, first video group unless it muted its
        camera, and second video group while it says that one shares its screen; in the order
        they went live."""
        sources = []
        for participant, stream in self.live.items():
            publisher = stream.live_publisher()
            if publisher is None:
                continue
            said = self.own_media(participant)
            audio = [g for g in publisher.groups if g[0].kind == AUDIO][:1]
            videos = [g for g in publisher.groups if g[0].kind == VIDEO][:2]
            for group in audio:
                sources.append(RoomSource(participant, AUDIO, group, publisher))
            if videos and VIDEO not in said.muted:
                sources.append(RoomSource(participant, VIDEO, videos[0], publisher))
            if said.screen and len(videos) > 1:
                sources.append(RoomSource(participant, VIDEO, videos[1], publisher, screen=True))
        return sources

    def say(self, subscriber: RoomSubscriber, said: OwnMedia, now: float) -> None:
        """A participant muted, unmuted, or started or stopped sharing: every subscriber's
        slots follow at once."""
        subscriber.own_media = said
        self.sync(now)

    def sync(self, now: float) -> None:
        """Point every subscriber's slots at the room's sources as they are now."""
        self.changed = False
        sources = self.sources()
        for subscriber in self.subscribers.values():
            subscriber.assign(sources, now)

    # -- the stream of its subscribers (player.PlayerStream) --

    def live_publisher(self) -> None:
        """A room has no one publisher: each slot's keyframe requests go to the publisher of
        its own source (RoomSubscriber.flush_requests)."""
        return None

    def player_ready(self, player: RoomSubscriber, now: float) -> None:
        """A subscriber connected, renegotiated or changed its prefs: fill its slots."""
        player.assign(self.sources(), now)

    def player_gone(self, player: RoomSubscriber) -> None:
        """A subscriber left: its slots stop, and the room goes with its last subscriber."""
        player.release_all()
        self.data.leave(player.session, player.participant)
        if self.subscribers.get(player.participant) is player:
            del self.subscribers[player.participant]
        if not self.subscribers:
            self.listen_all(False)
            self._on_empty(self)

    # -- what the control plane sees --

    def view(self, subscriber: RoomSubscriber) -> RoomView:
        names = sorted((self.live.keys() | self.subscribers.keys()) - {subscriber.participant})
        kinds: dict[str, list[str]] = {}
        for source in self.sources():
            kinds.setdefault(source.participant, []).append(source.track)
        return RoomView(
            room=self.name,
            participant=subscriber.participant,
            participants=tuple(
                ParticipantView(
                    name=name,
                    publishing=name in self.live,
                    kinds=tuple(kinds.get(name, ())),
                    subscribed=name in self.subscribers,
                    muted=tuple(sorted(self.own_media(name).muted)),
                )
                for name in names
            ),
            slots=subscriber.slots(),
            wanted=dict(subscriber.wanted),
            speakers=tuple(str(name) for name in self.detector.current.active),
            estimate=subscriber.estimate(),
            allocated=subscriber.allocation.allocated,
            paused=len(subscriber.paused),
            probes=subscriber.probes,
            failed_probes=subscriber.failed_probes,
            trials=subscriber.trials,
            failed_trials=subscriber.failed_trials,
        )


def _check_room(
    room: Room, participant: str, streams: Iterable[Stream], max_participants: int
) -> None:
    """RoomFull when `participant` is not in `room` yet and the room is full. Participants
    are those who subscribe, and those whose stream "ROOM/NAME" has a publisher, live or
    still connecting (a plain WHIP publisher is a publish-only participant)."""
    members = set(room.subscribers)
    for stream in streams:
        member = room_member(stream.name)
        if member is not None and member[0] == room.name and stream.publisher is not None:
            members.add(member[1])
    if participant not in members and len(members) >= max_participants:
        raise RoomFull(f"room {room.name} has {max_participants} participants")


def room_stats(room: Room) -> RoomStats:
    """The stats API's view of a room: counts and each subscriber's downlink share."""
    subscribers = []
    for name, subscriber in sorted(room.subscribers.items()):
        tracks = subscriber.tracks
        subscribers.append(
            SubscriberStats(
                serial=subscriber.serial,
                participant=name,
                state=subscriber.session.state.value,
                slots=len(tracks),
                fed=len(subscriber.feeds),
                paused=len(subscriber.paused),
                estimate=subscriber.estimate(),
                allocated=subscriber.allocation.allocated,
                packets=sum(t.packets for t in tracks),
                bytes=sum(t.bytes for t in tracks),
                probes=subscriber.probes,
                failed_probes=subscriber.failed_probes,
                trials=subscriber.trials,
                failed_trials=subscriber.failed_trials,
            )
        )
    return RoomStats(
        name=room.name,
        participants=len(room.subscribers.keys() | room.live.keys()),
        publishing=len(room.live),
        speakers=tuple(str(name) for name in room.detector.current.active),
        subscribers=tuple(subscribers),
    )


class Rooms:
    """The router's rooms by name."""

    def __init__(self, config: MediaConfig, sessions: SessionTable) -> None:
        self.by_name: dict[str, Room] = {}
        self._config = config
        self._sessions = sessions

    def __len__(self) -> int:
        return len(self.by_name)

    def stream_changed(self, stream: Stream) -> None:
        """A stream's publisher went live or away: its room, if any, syncs at the next tick
        (this runs inside a session's close, where slots should not move yet)."""
        member = room_member(stream.name)
        room = self.by_name.get(member[0]) if member is not None else None
        if room is not None and member is not None:
            room.stream_changed(member[1], stream)

    def admit(
        self, name: str, participant: str, streams: Iterable[Stream], max_participants: int
    ) -> Room:
        """The room a new subscriber of `participant` joins, made from the live streams if
        new (and kept only once the subscriber is added); ParticipantBusy or RoomFull."""
        room = self.by_name.get(name)
        if room is None:
            live = {}
            for stream in streams:
                member = room_member(stream.name)
                if member is not None and member[0] == name and stream.live_publisher():
                    live[member[1]] = stream
            room = Room(name, live, self._forget, RoomData(self._config, self._sessions))
        if participant in room.subscribers:
            raise ParticipantBusy(f"{participant} already subscribes in room {name}")
        _check_room(room, participant, streams, max_participants)
        return room

    def check_publisher(self, name: str, streams: Iterable[Stream], max_participants: int) -> None:
        """RoomFull when stream `name` would add a publish-only participant to a full room
        here: one counts once it subscribes or has a publisher, live or still connecting.
        Streams of a room nobody joined here (live/a, live/b) are not counted."""
        member = room_member(name)
        room = self.by_name.get(member[0]) if member is not None else None
        if room is not None and member is not None:
            _check_room(room, member[1], streams, max_participants)

    def join(self, room: Room, subscriber: RoomSubscriber, now: float) -> None:
        """Add an admitted subscriber; its slot counts are known at once, its slots fill
        once it connects (Room.player_ready)."""
        if self.by_name.get(room.name) is not room:
            self.by_name[room.name] = room
            room.listen_all(True)
        room.subscribers[subscriber.participant] = subscriber
        room.data.join(subscriber.session, subscriber.participant, now)
        subscriber.speakers = room.detector.current
        subscriber.assign(room.sources(), now)

    def _forget(self, room: Room) -> None:
        if self.by_name.get(room.name) is room:
            del self.by_name[room.name]

    def subscribers(self) -> Iterator[RoomSubscriber]:
        for room in self.by_name.values():
            yield from room.subscribers.values()

    def tick(self, now: float) -> None:
        """Every feedback tick: sync the rooms whose streams went live or away, and judge
        who speaks when a window is due."""
        for room in list(self.by_name.values()):
            if room.changed:
                room.sync(now)
            room.hear(now)

    def note_sent(self, now: float) -> None:
        """Every feedback tick: the send-side estimate of subscribers that play simulcast."""
        for subscriber in self.subscribers():
            if subscriber.adaptive:
                subscriber.note_sent(now)

    def send_reports(self, now: float) -> None:
        """Once a second: sync every room, then each connected subscriber's Sender Reports
        and layer choice."""
        for room in list(self.by_name.values()):
            room.sync(now)
        for subscriber in self.subscribers():
            if subscriber.session.state is SessionState.CONNECTED:
                subscriber.send_reports(now)
                subscriber.adapt(now)
