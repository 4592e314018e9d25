"""Where streams live across hosts: the registry (memory or Redis) and the node that relays.

registry and link know nothing of the media plane; node, relay_setup and api use sfu.routing
and sfu.io.
"""
