"""LiteSFU control plane: SDP offer/answer over WHIP, WHEP and SRS-compatible HTTP routes."""
