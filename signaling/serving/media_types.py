"""The Content-Types of the HTTP API, in a module both the front and the workers can load."""

SDP_TYPE = "application/sdp"
JSON_TYPE = "application/json"
SDPFRAG_TYPE = "application/trickle-ice-sdpfrag"  # RFC 8840 fragments in a PATCH
