"""One peer's transport state (ICE + DTLS + SRTP, consent) and the table that finds it.

May import sfu.protocol and sfu.wire; nothing of routing or the socket adapters.
"""
