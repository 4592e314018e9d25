"""The socket adapters: the UDP endpoint, the ICE-TCP listener and the server that drives timers.

The only sfu package that touches the network; may import every sfu package below it.
"""
