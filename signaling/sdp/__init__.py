"""SDP offer parsing, negotiation, answers, candidates, trickle and ICE-server links.

Pure text in, values out; may import sfu.media and the wire constants, nothing that runs.
"""
