"""Load generator and benchmarks for LiteSFU: codec-free WebRTC clients that report numbers.

`python -m bench.load` drives publishers and players against a running server;
`python -m bench.sweep` starts a server and raises the player count until it saturates.
"""
