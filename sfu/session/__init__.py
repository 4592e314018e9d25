"""One peer's transport state (ICE + DTLS + SRTP, consent), the Transport contract a relay's
end meets too, and the table that finds sessions.

May import sfu.protocol and sfu.wire; nothing of routing or the socket adapters.
"""
