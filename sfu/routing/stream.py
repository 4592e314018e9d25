"""A named stream: which publisher feeds which players, and its totals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfu.routing.stats import StreamStats, StreamSummary, next_serial
from sfu.routing.stream_data import StreamData
from sfu.session.peer import PeerSession
from sfu.session.transport import SendFunction, SessionState, Transport

if TYPE_CHECKING:
    from sfu.routing.player import Player
    from sfu.routing.publisher import Publisher, PublisherStream
    from sfu.routing.subscriber_track import SubscriberTrack

log = logging.getLogger(__name__)


def is_relay(session: object) -> bool:
    """A relay's end (sfu.routing.relay.PlainSession) rather than a peer's session."""
    return not isinstance(session, PeerSession)


class Stream:
    """A named stream: at most one publisher and any number of players, in either order."""

    def __init__(
        self,
        name: str,
        sendto_for: Callable[[Transport], SendFunction],
        on_empty: Callable[[Stream], None],
        on_live: Callable[[Stream], None],
    ) -> None:
        self.name = name
        # What forwards to a player's session; whom to tell once the stream has neither
        # publisher nor players (the router, which forgets it then), and whenever its
        # publisher goes live or away (the router, for the stream's room if it has one).
        self._sendto_for = sendto_for
        self._on_empty = on_empty
        self._on_live = on_live
        self.serial = next_serial()
        self.publisher: Publisher | None = None
        self.players: set[Player] = set()
        self.data: StreamData | None = None  # once a session with data channels takes part
        # Counters of sessions that have left, so totals never go backwards.
        self.past_packets_in = 0
        self.past_bytes_in = 0
        self.past_packets_out = 0
        self.past_bytes_out = 0
        # Room slots that carry this stream now (sfu.routing.room_subscriber) and their
        # (packets, bytes) when they began to: what they sent since is this stream's outflow.
        self.room_slots: dict[SubscriberTrack, tuple[int, int]] = {}
        self.rate_in = 0.0
        self.rate_out = 0.0
        self._last_sample: tuple[float, int, int] | None = None

    def live_publisher(self) -> Publisher | None:
        pub = self.publisher
        if pub is not None and pub.session.state is SessionState.CONNECTED:
            return pub
        return None

    def publisher_ready(self, now: float) -> None:
        for player in self.players:
            if player.session.state is SessionState.CONNECTED:
                self._link(player, now)
        self._on_live(self)

    def player_ready(self, player: Player, now: float) -> None:
        if self.live_publisher() is not None:
            self._link(player, now)

    def _link(self, player: Player, now: float) -> None:
        """Attach each player track to the publisher track of the same kind and position."""
        publisher = self.publisher
        assert publisher is not None
        for kind in {t.kind for t in player.tracks}:
            groups = [g for g in publisher.groups if g[0].kind == kind]
            sinks = [t for t in player.tracks if t.kind == kind]
            for group, sink in zip(groups, sinks, strict=False):
                source = player.first_layer(group, sink)
                codec = sink.codec_for(source.codec)
                if codec is None:
                    log.warning(
                        "stream %s: player %s cannot receive %s; its %s track stays empty",
                        self.name,
                        player.session.id,
                        source.codec.name,
                        kind,
                    )
                    player.codec_mismatch[kind] = source.codec.name
                    continue
                player.codec_mismatch.pop(kind, None)
                sink.attach(source, codec, self._sendto_for(player.session))
                source.request_keyframe(now, start=True)
        publisher.flush()

    def publisher_gone(self, publisher: Publisher) -> None:
        if self.publisher is not publisher:
            return
        for track in publisher.tracks:
            self.past_packets_in += track.packets
            self.past_bytes_in += track.bytes
            for sub in list(track.subscribers):
                sub.detach()
            # Each layer's group lists the layer itself: emptied, the tracks and their packet
            # caches are freed with the publisher, not at the next full collection.
            track.layers.clear()
        self.publisher = None
        if self.data is not None:
            self.data.leave(publisher.session)
        self._on_live(self)
        self._on_empty(self)

    def player_gone(self, player: Player) -> None:
        self.players.discard(player)
        if self.data is not None:
            self.data.leave(player.session)
        for track in player.tracks:
            self.past_packets_out += track.packets
            self.past_bytes_out += track.bytes
            track.detach()
        self._on_empty(self)

    def take_slot(self, slot: SubscriberTrack, previous: PublisherStream | None) -> None:
        """A room slot carries this stream from now on, and no longer `previous` if another."""
        if previous is self:
            return
        if previous is not None:
            previous.slot_left(slot)
        self.room_slots[slot] = (slot.packets, slot.bytes)

    def slot_left(self, slot: SubscriberTrack) -> None:
        """A room slot stopped carrying this stream: what it sent of it stays counted."""
        begun = self.room_slots.pop(slot, None)
        if begun is not None:
            self.past_packets_out += slot.packets - begun[0]
            self.past_bytes_out += slot.bytes - begun[1]

    def counters(self) -> tuple[int, int, int, int]:
        """(packets in, bytes in, packets out, bytes out) since the stream appeared."""
        packets_in, bytes_in = self.past_packets_in, self.past_bytes_in
        if self.publisher is not None:
            packets_in += sum(t.packets for t in self.publisher.tracks)
            bytes_in += sum(t.bytes for t in self.publisher.tracks)
        packets_out, bytes_out = self.past_packets_out, self.past_bytes_out
        for player in self.players:
            packets_out += sum(t.packets for t in player.tracks)
            bytes_out += sum(t.bytes for t in player.tracks)
        for slot, (packets, size) in self.room_slots.items():
            packets_out += slot.packets - packets
            bytes_out += slot.bytes - size
        return packets_in, bytes_in, packets_out, bytes_out

    def sample_rates(self, now: float) -> None:
        """Update bits-per-second in and out from the counters since the last sample."""
        _, bytes_in, _, bytes_out = self.counters()
        if self._last_sample is not None:
            then, last_in, last_out = self._last_sample
            elapsed = now - then
            if elapsed > 0:
                self.rate_in = 8 * (bytes_in - last_in) / elapsed
                self.rate_out = 8 * (bytes_out - last_out) / elapsed
        self._last_sample = (now, bytes_in, bytes_out)

    def stats(self) -> StreamStats:
        packets_in, bytes_in, packets_out, bytes_out = self.counters()
        publisher = self.publisher
        return StreamStats(
            serial=self.serial,
            name=self.name,
            live=self.live_publisher() is not None,
            packets_in=packets_in,
            bytes_in=bytes_in,
            packets_out=packets_out,
            bytes_out=bytes_out,
            bitrate_in=self.rate_in,
            bitrate_out=self.rate_out,
            publisher=publisher.stats() if publisher is not None else None,
            players=tuple(p.stats() for p in self.players),
        )

    def summary(self) -> StreamSummary:
        publisher = self.publisher
        live = self.live_publisher()
        return StreamSummary(
            name=self.name,
            has_publisher=publisher is not None,
            live=live is not None,
            publisher_relay=publisher is not None
            and not isinstance(publisher.session, PeerSession),
            players=len(self.players),
            relay_players=sum(1 for p in self.players if not isinstance(p.session, PeerSession)),
            layers=live.layers() if live is not None else (),
        )
