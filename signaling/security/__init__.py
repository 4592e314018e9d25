"""Who may do what: tokens, per-address admission, stream limits and the publish/play hooks.

May import routing's public names (roles, Router queries); no HTTP routes of its own.
"""
