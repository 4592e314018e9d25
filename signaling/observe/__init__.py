"""What operators see: Prometheus metrics, server-sent events and log formatting.

May import routing's typed stats and the http plumbing; the front uses only its front half.
"""
