"""A stream's data channels: the publisher's channels, opened toward every player, and relayed.

Each channel the publisher opens is opened toward each player under the same label and
options (DCEP), as soon as both ends are up, and each message the publisher sends goes to every
player on its copy of the channel, in order where the channel is ordered. Players only listen:
their messages are dropped and counted unless the server lets them reach the publisher
(--stream-data-replies). A sender is held to a message and byte rate; a receiver that lets more
than its buffer wait loses messages on unreliable channels and its session on reliable ones.
Every drop is counted in the session table's drops (stats and /metrics).
"""

from __future__ import annotations

from sfu.config import MediaConfig
from sfu.protocol.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelOptions,
    DataClosed,
    DataEvent,
    DataReady,
)
from sfu.routing.data_limits import DataMember, deliver
from sfu.session.peer import PeerSession
from sfu.session.table import SessionTable
from sfu.session.transport import Transport


class _Member(DataMember):
    """One session's part in the stream's data."""

    __slots__ = ("idle", "publishing", "streams")

    def __init__(self, relay: StreamData, session: PeerSession, publishing: bool, now: float):
        super().__init__(relay, session, now)
        self.publishing = publishing
        self.streams: dict[int, int] = {}  # publisher's stream -> this player's copy
        self.idle: dict[ChannelOptions, list[int]] = {}  # copies of channels the publisher closed


class StreamData:
    """The data channels of one stream's publisher and players."""

    def __init__(self, config: MediaConfig, sessions: SessionTable) -> None:
        self.config = config
        self._sessions = sessions
        self.publisher: _Member | None = None
        self.channels: dict[int, ChannelOptions] = {}  # the publisher's, by stream
        self.players: dict[str, _Member] = {}

    def join(self, session: PeerSession, publishing: bool, now: float) -> None:
        """Take part when the session negotiated data channels; nothing reaches it otherwise."""
        if session.data is None:
            return
        member = _Member(self, session, publishing, now)
        session.data.handler = member
        if publishing:
            self.publisher = member
            self.channels = {}
        else:
            self.players[session.id] = member

    def leave(self, session: Transport) -> None:
        self.players.pop(session.id, None)
        if self.publisher is not None and self.publisher.session is session:
            self._publisher_gone()

    def on_data(self, member: _Member, event: DataEvent, now: float) -> None:
        if isinstance(event, ChannelMessage):
            self._message(member, event, now)
        elif isinstance(event, DataReady):
            member.ready = True
            if not member.publishing:
                for stream, options in self.channels.items():
                    self._open_copy(member, stream, options, now)
        elif isinstance(event, ChannelOpened) and member is self.publisher:
            self.channels[event.stream] = event.options
            for player in self.players.values():
                self._open_copy(player, event.stream, event.options, now)
        elif isinstance(event, ChannelClosed) and member is self.publisher:
            options = self.channels.pop(event.stream, None)
            for player in self.players.values():
                self._retire_copy(player, event.stream, options)
        elif isinstance(event, DataClosed):
            self.leave(member.session)

    def _publisher_gone(self) -> None:
        for stream, options in self.channels.items():
            for player in self.players.values():
                self._retire_copy(player, stream, options)
        self.publisher = None
        self.channels = {}

    def _open_copy(self, player: _Member, stream: int, options: ChannelOptions, now: float) -> None:
        """The player's copy of a publisher's channel: one left idle by an earlier publisher
        with the same label and options, or a new one."""
        data = player.session.data
        if not player.ready or data is None or stream in player.streams:
            return
        spare = player.idle.get(options)
        copy = spare.pop() if spare else data.open(options, now)
        if copy is not None:
            player.streams[stream] = copy
            self._sessions.lower_timer_floor(player.session)

    def _retire_copy(self, player: _Member, stream: int, options: ChannelOptions | None) -> None:
        copy = player.streams.pop(stream, None)
        if copy is not None and options is not None:
            player.idle.setdefault(options, []).append(copy)

    def _message(self, member: _Member, event: ChannelMessage, now: float) -> None:
        drops = self._sessions.drops
        if not member.publishing and not self.config.stream_data_replies:
            drops["data_from_player"] += 1
            return
        if not member.rate.allows(len(event.data), now):
            drops["data_sender_rate"] += 1
            return
        if member.publishing:
            options = self.channels.get(event.stream)
            if options is None:
                drops["data_unknown_channel"] += 1  # a channel the publisher never opened
                return
            for player in list(self.players.values()):
                copy = player.streams.get(event.stream)
                if copy is not None:
                    self._deliver(player, copy, event, options.reliable, now)
            return
        publisher = self.publisher
        origin = next((s for s, c in member.streams.items() if c == event.stream), None)
        if publisher is None or origin is None:
            drops["data_reply_nowhere"] += 1
            return
        self._deliver(publisher, origin, event, self.channels[origin].reliable, now)

    def _deliver(
        self, to: _Member, stream: int, event: ChannelMessage, reliable: bool, now: float
    ) -> None:
        message = (event.data, event.text)
        deliver(self._sessions, self.config, to.session, stream, message, reliable, now)
