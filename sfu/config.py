"""Media-plane settings, with the defaults a fresh install runs on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MediaConfig:
    """Everything the media plane needs to know that is not per session."""

    udp_host: str = "0.0.0.0"  # where the UDP socket binds
    udp_port: int = 8000
    tcp_port: int = 0  # passive ICE-TCP listener (RFC 6544); 0: none
    # ICE-TCP connections at once; when all are taken, one never authenticated gives way.
    tcp_connections: int = 256
    # ICE-TCP connections one client address (an IPv6 /64) may hold: a peer connection uses one,
    # and an office behind one NAT address may run several, but one address never fills the table.
    tcp_per_address: int = 16
    # STUN servers (host, port) asked for the media socket's public address (srflx candidates).
    stun_servers: tuple[tuple[str, int], ...] = ()
    session_timeout: float = 30.0  # seconds with no valid packet before a session ends
    pending_timeout: float = 10.0  # seconds for ICE + DTLS to finish before a session ends
    keyframe_interval: float = 0.5  # at most one keyframe request per track per this many seconds
    socket_buffer: int = 4 * 1024 * 1024  # SO_RCVBUF / SO_SNDBUF asked of the kernel
    # Participants of one room (who subscribe or publish): each costs every other a slot of
    # each kind, so a room's forwarding grows with the square of this.
    max_room_participants: int = 100
    # Data channels (SCTP over DTLS): the largest message either way (a=max-message-size), the
    # channels one session may have, what one sender may send per second (messages, bytes; a
    # burst of one second's worth), what may wait toward one receiver before a reliable channel
    # ends its session, and whether players' messages on a stream's channels reach the publisher.
    data_max_message_size: int = 256 * 1024
    data_channels: int = 16
    data_message_rate: float = 1000.0
    data_byte_rate: float = 4 * 1024 * 1024
    data_receiver_buffer: int = 2 * 1024 * 1024
    stream_data_replies: bool = False
    # Recording (sfu/egress): the folder files go to (None: off), the stream-name globs
    # recorded whenever live, and the seconds after which a file rotates (0: one per publish).
    record_dir: str | None = None
    record_patterns: tuple[str, ...] = field(default_factory=tuple)
    record_segment: float = 0.0
