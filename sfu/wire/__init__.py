"""Wire codecs: STUN, RTP/RTCP and header extensions, RFC 7983 demux, RFC 4571 framing.

Bytes in, values out; imports only the standard library and sfu.config/sfu.media.
"""
