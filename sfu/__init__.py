"""LiteSFU media plane: one UDP port, ICE-lite, DTLS-SRTP and packet-by-packet forwarding."""
