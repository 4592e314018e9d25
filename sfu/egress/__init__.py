"""Egress: streams leaving the server as files, without decoding: depacketizing RTP into
frames, aligning tracks on one clock, and muxing them (PyAV) into WebM or fragmented MP4.

May import sfu.wire, sfu.protocol, sfu.session and sfu.routing (a recorder is a player)."""
