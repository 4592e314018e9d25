"""The router: owns the sessions and streams; signaling asks it to publish, play and close.

The UDP endpoint hands packets to each session's media handler (sfu.routing.publisher.Publisher or
sfu.routing.player.Player), which feed one another through a sfu.routing.stream.Stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from sfu.config import MediaConfig
from sfu.media import Codec, PeerParams
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.simulcast import Choice, ranked
from sfu.routing.context import HandlerContext
from sfu.routing.player import Player
from sfu.routing.publisher import Publisher
from sfu.routing.room import ParticipantBusy as ParticipantBusy  # raised by subscribe()
from sfu.routing.room import Room, Rooms, max_slots, room_stats
from sfu.routing.room import RoomFull as RoomFull  # raised by subscribe()
from sfu.routing.room_stats import RoomStats, RoomView, TrackPrefs
from sfu.routing.room_subscriber import RoomSubscriber, check_slots
from sfu.routing.stats import ResourceCounts, SessionInfo, StreamStats, StreamSummary
from sfu.routing.stream import Stream
from sfu.routing.stream_data import StreamData
from sfu.session.peer import PeerSession
from sfu.session.table import EndedSession, SessionTable
from sfu.session.transport import Address, SendFunction, SessionState, Transport

PUBLISH = "publish"
PLAY = "play"
SUBSCRIBE = "subscribe"  # a room participant's session that receives the others' media
FEEDBACK_INTERVAL = 0.05  # transport-wide CC feedback and NACK retries
REPORT_INTERVAL = 1.0  # RTCP SR/RR, bitrate samples, layer choices


class StreamBusy(Exception):
    """The stream already has a live publisher."""


class Router:
    """Owns sessions and streams; signaling calls publish/play/close, the endpoint feeds packets."""

    def __init__(
        self,
        config: MediaConfig,
        certificate: Certificate,
        send: SendFunction,
        sessions: SessionTable,
        sendto_for: Callable[[Address | None], SendFunction] | None = None,
        rng: random.Random = ice.SYSTEM_RANDOM,
    ) -> None:
        self.config = config
        # Session ids, ICE credentials, SSRCs and sequence starts: seeded in tests.
        self.rng = rng
        self.certificate = certificate
        self.send = send
        # What forwarding to an address sends with: the endpoint's choice of the socket's own
        # sendto (the caller catches its OSError; the compiled fan-out uses its descriptor) or
        # a framing send for ICE-TCP; `send` for everything when there is no endpoint.
        self._sendto_for = sendto_for or (lambda addr: send)
        self.sessions = sessions
        self.streams: dict[str, Stream] = {}
        self.rooms = Rooms(config, sessions)
        self.ended = sessions.ended  # for late DELETEs
        self._next_feedback = self._next_report = 0.0
        # What the publishers and players made here may use of the router.
        self._handlers = HandlerContext(sessions, rng, config.keyframe_interval, self.sendto_for)

    def _stream(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            stream = self.streams[name] = Stream(
                name, self.sendto_for, self.forget_if_empty, self.rooms.stream_changed
            )
        return stream

    def forget_if_empty(self, stream: Stream) -> None:
        if (
            stream.publisher is None
            and not stream.players
            and self.streams.get(stream.name) is stream
        ):
            del self.streams[stream.name]

    def _new_session(self, role: str, stream: str, peer: PeerParams, now: float) -> PeerSession:
        session = PeerSession(
            role, stream, peer, self.certificate, self.send, now, self.config, self.rng
        )
        self.sessions.add(session)
        return session

    def _free_stream(self, name: str) -> Stream:
        stream = self._stream(name)
        if stream.publisher is not None:
            raise StreamBusy(f"stream {name} already has a publisher")
        return stream

    def _set_publisher(self, stream: Stream, session: Transport) -> Publisher:
        stream.publisher = Publisher(self._handlers, stream, session)
        session.handler = stream.publisher
        return stream.publisher

    def sendto_for(self, session: Transport) -> SendFunction:
        """What forwards to a session at its address (UDP, TCP), or in-process (egress)."""
        return getattr(session, "local_send", None) or self._sendto_for(session.addr)

    def publish(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new publishing session for stream `name`; StreamBusy if one is already there,
        RoomFull if it would be one participant too many in its room."""
        self.rooms.check_publisher(name, self.streams.values(), self.config.max_room_participants)
        stream = self._free_stream(name)
        session = self._new_session(PUBLISH, name, peer, now)
        self._set_publisher(stream, session)
        self._join_data(stream, session, True, now)
        return session

    def add_publisher(self, name: str, session: Transport) -> Publisher:
        """Make a session created elsewhere (a relay's) the publisher of `name`; StreamBusy if
        one is already there. The caller keeps the session out of the session table."""
        return self._set_publisher(self._free_stream(name), session)

    def play(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new playing session; it may come before the publisher does."""
        session = self._new_session(PLAY, name, peer, now)
        self.add_player(name, session)
        self._join_data(self._stream(name), session, False, now)
        return session

    def _join_data(
        self, stream: Stream, session: PeerSession, publishing: bool, now: float
    ) -> None:
        """The stream's data channels, when the session negotiated them."""
        if session.data is not None:
            if stream.data is None:
                stream.data = StreamData(self.config, self.sessions)
            stream.data.join(session, publishing, now)

    def add_player(self, name: str, session: Transport) -> Player:
        """Make a session a player of `name`: play() for real peers, relays for their own."""
        stream = self._stream(name)
        player = Player(self._handlers, stream, session)
        stream.players.add(player)
        session.handler = player
        return player

    def preferred_codecs(self, name: str) -> dict[str, Codec]:
        """kind -> codec of the stream's current publisher, to put first in a player answer."""
        stream = self.streams.get(name)
        if stream is None or stream.publisher is None:
            return {}
        return {t.kind: t.codec for t in stream.publisher.tracks}

    def layer_rids(self, name: str) -> set[str] | None:
        """The rids the stream's live publisher sends; None when there is no live publisher."""
        stream = self.streams.get(name)
        publisher = stream.live_publisher() if stream is not None else None
        if publisher is None:
            return None
        return {t.rid for t in publisher.tracks if t.rid is not None}

    def set_layer(self, session_id: str, mid: str | None, choice: Choice, now: float) -> None:
        """A player's layer choice (the WHEP layer extension); KeyError for a session that is
        not a live player, LookupError for a mid or rid it cannot have."""
        session = self.sessions.by_id.get(session_id)
        player = session.handler if session is not None else None
        if not isinstance(player, Player) or isinstance(player, RoomSubscriber):
            raise KeyError(session_id)
        player.set_choice(choice, mid, now)

    def subscribe(self, room: str, participant: str, peer: PeerParams, now: float) -> PeerSession:
        """A participant's subscribe session: each of its m-lines a slot for another's audio
        or video. ParticipantBusy, RoomFull, or ValueError for an offer of too many slots."""
        limit = self.config.max_room_participants
        joined = self.rooms.admit(room, participant, self.streams.values(), limit)
        check_slots(peer.tracks, max_slots(limit))
        session = self._new_session(SUBSCRIBE, f"{room}/{participant}", peer, now)
        subscriber = RoomSubscriber(self._handlers, joined, session, participant)
        session.handler = subscriber
        self.rooms.join(joined, subscriber, now)
        return session

    def subscriber_and_room(self, session_id: str) -> tuple[RoomSubscriber, Room]:
        """A live subscribe session's handler and its room; KeyError for any other id."""
        session = self.sessions.by_id.get(session_id)
        handler = session.handler if session is not None else None
        if not isinstance(handler, RoomSubscriber) or session.state is SessionState.CLOSED:
            raise KeyError(session_id)
        assert isinstance(handler.stream, Room)
        return handler, handler.stream

    def renegotiate(self, session_id: str, peer: PeerParams, now: float) -> PeerSession:
        """A subscriber's new offer: appended m-lines become slots; new ICE credentials
        restart ICE. KeyError: no such live subscribe session; ValueError: an earlier m-line
        removed, moved or changed kind."""
        subscriber, room = self.subscriber_and_room(session_id)
        session = self.sessions.by_id[session_id]
        credentials = (session.ice.remote_ufrag, session.ice.remote_pwd)
        subscriber.renegotiate(peer, max_slots(self.config.max_room_participants))
        if (peer.ice_ufrag, peer.ice_pwd) != credentials:
            self.restart_ice(session_id, peer.ice_ufrag, peer.ice_pwd)
        room.player_ready(subscriber, now)
        return session

    def set_prefs(self, session_id: str, prefs: dict[str, TrackPrefs], now: float) -> None:
        """A subscriber's wishes per other participant (pinned, off, size cap); KeyError: no
        such live subscribe session; ValueError: more entries than a room has participants."""
        subscriber, room = self.subscriber_and_room(session_id)
        if len(prefs) > self.config.max_room_participants:
            raise ValueError(
                f"prefs for {len(prefs)} participants; a room has at most "
                f"{self.config.max_room_participants}"
            )
        subscriber.prefs = dict(prefs)
        room.player_ready(subscriber, now)

    def room_view(self, session_id: str) -> RoomView | None:
        """What a subscriber sees of its room; None: no such live subscribe session."""
        try:
            subscriber, room = self.subscriber_and_room(session_id)
        except KeyError:
            return None
        return room.view(subscriber)

    def close(self, session_id: str, reason: str, now: float | None = None) -> bool:
        session = self.sessions.by_id.get(session_id)
        if session is None:
            return False
        session.close(reason, now)
        self.sessions.settle(session)
        return True

    def restart_ice(
        self, session_id: str, remote_ufrag: str, remote_pwd: str
    ) -> PeerSession | None:
        """Give a session new ICE credentials (PATCH with new ice-ufrag/pwd); None if unknown."""
        session = self.sessions.by_id.get(session_id)
        if session is None or session.state is SessionState.CLOSED:
            return None
        session.restart_ice(remote_ufrag, remote_pwd)
        self.sessions.settle(session)
        return session

    def next_timer(self) -> float | None:
        """The earliest of the feedback and report ticks and the sessions' timer floor."""
        return min(self._next_feedback, self._next_report, self.sessions.timer_floor)

    def handle_timer(self, now: float) -> None:
        """Run whatever is due: feedback, the sessions' timers (DTLS retransmission, checks,
        timeouts), reports. The sessions are visited only once their timer floor is reached
        (one pass runs the due ones and finds the next floor): asking hundreds of sessions
        twice per 50 ms tick was the largest cost of an idle tick."""
        if now >= self._next_feedback:
            self._next_feedback = now + FEEDBACK_INTERVAL
            self.rooms.tick(now)
            self.send_feedback(now)
        table = self.sessions
        if now >= table.timer_floor:
            table.timer_floor = math.inf  # settle() below lowers it for what it handles
            earliest = math.inf
            for session in list(table.by_id.values()):
                at = session.next_timer()
                if at is not None and at <= now:
                    session.handle_timer(now)
                    table.settle(session)
                    at = session.next_timer()
                if at is not None and at < earliest:
                    earliest = at
            table.timer_floor = min(table.timer_floor, earliest)
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL
            self.send_reports(now)

    def send_feedback(self, now: float) -> None:
        """Every few tens of ms: transport-wide CC and NACK retries to publishers."""
        for stream in self.streams.values():
            publisher = stream.live_publisher()
            if publisher is not None:
                publisher.send_feedback(now)
                # Only a simulcast or VP9 source makes a player adaptive: skip the players
                # otherwise.
                if publisher.layered:
                    for player in stream.players:
                        if player.adaptive:
                            player.note_sent(now)
        self.rooms.note_sent(now)

    def send_reports(self, now: float) -> None:
        """Once a second: RR to publishers, SR to players, keyframes for waiting players,
        bitrate samples."""
        for stream in list(self.streams.values()):
            stream.sample_rates(now)
            publisher = stream.live_publisher()
            if publisher is None:
                continue
            publisher.send_reports(now)
            for track in publisher.tracks:
                track.sample_bitrate(now)
                if track.switching or (track.subscribers and track.waiting_players()):
                    track.request_keyframe(now)
            for group in publisher.groups:
                group[:] = ranked(group)  # layers keep lowest first as bitrates change
            for player in stream.players:
                if player.session.state is SessionState.CONNECTED:
                    player.send_reports(now)
                    player.adapt(now)
            publisher.flush()  # keyframes for waiting and switching players
        self.rooms.send_reports(now)

    def resource_counts(self) -> dict[str, int]:
        """The resources() of /api/v1/server."""
        return self.resources().to_json()

    def close_all(self, reason: str, now: float | None = None) -> None:
        for session in list(self.sessions.by_id.values()):
            session.close(reason, now)
            self.sessions.settle(session)

    def snapshot(self, offset: int = 0, limit: int | None = None) -> list[dict]:
        """The `streams` of /api/v1/streams, by name: `limit` of them from `offset`, so a page
        costs only its own streams."""
        names = sorted(self.streams)[offset : None if limit is None else offset + limit]
        return [self.streams[name].stats().to_json() for name in names]

    def stream_count(self) -> int:
        return len(self.streams)

    def session_state(self, session_id: str) -> str | None:
        """The state ("new", "connecting", "connected") of a live session; None once it ended."""
        session = self.sessions.by_id.get(session_id)
        return session.state.value if session is not None else None

    # --- queries for the control plane: frozen values, never the router's own objects ---

    def stream_stats(self) -> list[StreamStats]:
        """Every stream with its publisher, players and tracks, by name."""
        return [stream.stats() for stream in sorted(self.streams.values(), key=lambda s: s.name)]

    def stream_summaries(self) -> dict[str, StreamSummary]:
        """name -> what a sampler or a load report needs of each stream."""
        return {name: stream.summary() for name, stream in self.streams.items()}

    def room_stats(self, offset: int = 0, limit: int | None = None) -> list[RoomStats]:
        """The rooms with a subscriber here, by name: `limit` of them from `offset`."""
        names = sorted(self.rooms.by_name)[offset : None if limit is None else offset + limit]
        return [room_stats(self.rooms.by_name[name]) for name in names]

    def room_names(self) -> frozenset[str]:
        """The rooms that have a subscriber here: a cluster node relays their streams in."""
        return frozenset(self.rooms.by_name)

    def stream_summary(self, name: str) -> StreamSummary | None:
        """One stream's summary; None when it has neither publisher nor players."""
        stream = self.streams.get(name)
        return stream.summary() if stream is not None else None

    def resources(self) -> ResourceCounts:
        """How much state the router holds, to spot leaks: all must return to zero when idle."""
        publishers = [s.publisher for s in self.streams.values() if s.publisher is not None]
        players = [p for s in self.streams.values() for p in s.players]
        players += self.rooms.subscribers()
        return ResourceCounts(
            sessions=len(self.sessions),
            bound_addresses=len(self.sessions.by_addr),
            streams=len(self.streams),
            publisher_tracks=sum(len(p.tracks) for p in publishers),
            player_tracks=sum(len(p.tracks) for p in players),
            media_packets_out=sum(s.counters()[2] for s in self.streams.values()),
        )

    def session_count(self) -> int:
        """Live sessions of the session table (relays' ends are not there)."""
        return len(self.sessions)

    def player_count(self, name: str) -> int:
        """Players of a stream, relays included: what a per-stream cap counts."""
        stream = self.streams.get(name)
        return len(stream.players) if stream is not None else 0

    def session_info(self, session_id: str) -> SessionInfo | None:
        """A live session by id; None for one never made or ended."""
        session = self.sessions.by_id.get(session_id)
        if session is None:
            return None
        return SessionInfo(session.id, session.role, session.stream, session.state.value)

    def live_session(self, session_id: str) -> PeerSession | None:
        """The live session itself, for the commands that act on it (PATCH, trickle)."""
        return self.sessions.by_id.get(session_id)

    def session_ids(self) -> frozenset[str]:
        """The ids of the live sessions, to prune what signaling keeps per session."""
        return frozenset(self.sessions.by_id)

    def ended_session(self, session_id: str) -> EndedSession | None:
        """What is remembered of a session that ended, for a late DELETE."""
        return self.ended.get(session_id)
