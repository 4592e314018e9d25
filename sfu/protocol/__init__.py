"""Protocol state: ICE-lite, DTLS, SRTP, receive stats, TWCC, keyframes, estimators, the C fan-out.

Sans-IO objects fed bytes and time; may import sfu.wire and the shared contracts.
"""
