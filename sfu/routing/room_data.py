"""A room's data channels: each participant's message reaches every other participant, or the
names it lists, stamped with its sender's name (sfu.wire.room_message).

Room data rides the participants' subscribe sessions. A channel any participant opens is a room
channel: the server opens it, under the same label and options, toward every other participant
whose session negotiated data, and relays each message on it to their copies. A participant
that opened the same channel itself is sent on its own. The sender's rate and the receivers'
buffers are held as for stream data (sfu.routing.data_limits); every drop is counted.
"""

from __future__ import annotations

from sfu.config import MediaConfig
from sfu.media import DataParams
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
from sfu.wire.room_message import BadRoomMessage, parse_text, stamp_binary, stamp_text


def kept_data(old: DataParams | None, new: DataParams | None) -> DataParams | None:
    """A subscriber's data m-line across a re-offer: the one it had (a session gets no data
    channels after it starts); ValueError when the re-offer removed or moved it."""
    if old is not None and (new is None or new.mid != old.mid):
        raise ValueError("the offer removed or moved the data channel m-line")
    return old


class _Member(DataMember):
    """One participant's part in the room's data."""

    __slots__ = ("channels", "name")

    def __init__(self, relay: RoomData, session: PeerSession, name: str, now: float) -> None:
        super().__init__(relay, session, now)
        self.name = name
        self.channels: dict[int, ChannelOptions] = {}  # its streams, its own or the server's

    def stream_for(self, options: ChannelOptions) -> int | None:
        return next((s for s, o in self.channels.items() if o == options), None)


class RoomData:
    """The data channels of one room's participants."""

    def __init__(self, config: MediaConfig, sessions: SessionTable) -> None:
        self.config = config
        self._sessions = sessions
        self.channels: set[ChannelOptions] = set()  # every room channel, at most data_channels
        self.members: dict[str, _Member] = {}  # by participant name

    def join(self, session: Transport, name: str, now: float) -> None:
        """Take part when the session negotiated data channels; nothing reaches it otherwise."""
        if isinstance(session, PeerSession) and session.data is not None:
            member = _Member(self, session, name, now)
            session.data.handler = member
            self.members[name] = member

    def leave(self, session: Transport, name: str) -> None:
        member = self.members.get(name)
        if member is not None and member.session is session:
            del self.members[name]

    def on_data(self, member: _Member, event: DataEvent, now: float) -> None:
        if isinstance(event, ChannelMessage):
            self._message(member, event, now)
        elif isinstance(event, DataReady):
            member.ready = True
            for options in self.channels:
                self._open_copy(member, options, now)
        elif isinstance(event, ChannelOpened):
            member.channels[event.stream] = event.options
            self._add_channel(event.options, now)
        elif isinstance(event, ChannelClosed):
            member.channels.pop(event.stream, None)
        elif isinstance(event, DataClosed):
            self.leave(member.session, member.name)

    def _add_channel(self, options: ChannelOptions, now: float) -> None:
        if options in self.channels:
            return
        if len(self.channels) >= self.config.data_channels:
            self._sessions.drops["data_room_channel_limit"] += 1  # relayed to no one
            return
        self.channels.add(options)
        for member in self.members.values():
            self._open_copy(member, options, now)

    def _open_copy(self, member: _Member, options: ChannelOptions, now: float) -> None:
        data = member.session.data
        if not member.ready or data is None or member.stream_for(options) is not None:
            return
        stream = data.open(options, now)
        if stream is not None:
            member.channels[stream] = options
            self._sessions.lower_timer_floor(member.session)

    def _message(self, member: _Member, event: ChannelMessage, now: float) -> None:
        drops = self._sessions.drops
        options = member.channels.get(event.stream)
        if options is None or options not in self.channels:
            drops["data_unknown_channel"] += 1
            return
        if not member.rate.allows(len(event.data), now):
            drops["data_sender_rate"] += 1
            return
        try:
            if event.text:
                addressed = parse_text(event.data, self.config.max_room_participants)
                to, body = addressed.to, stamp_text(member.name, addressed)
            else:
                to, body = None, stamp_binary(member.name, event.data)
        except BadRoomMessage:
            drops["data_room_bad_message"] += 1
            return
        if len(body) > self.config.data_max_message_size:
            drops["data_room_too_large"] += 1  # no room left for the sender's name
            return
        names = sorted(self.members.keys() - {member.name} if to is None else set(to))
        for name in names:
            receiver = self.members.get(name)
            stream = None if receiver is None else receiver.stream_for(options)
            if receiver is not None and receiver is not member and stream is not None:
                message = (body, event.text)
                deliver(
                    self._sessions,
                    self.config,
                    receiver.session,
                    stream,
                    message,
                    options.reliable,
                    now,
                )
