"""What every serving process shares, the --workers front and a media server alike: request
plumbing, the connection guard, access checks, names, content types, TLS and stop signals.

Imports no media-plane module; may import signaling.security only.
"""
