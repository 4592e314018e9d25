"""What the `--workers` front and its workers agree on, in a module that loads no media code.

The front is HTTP only and must not import the media plane; the workers' internal routes live
in internal.py, which does. Both sides take the names of their shared headers from here.
"""

from __future__ import annotations

# The front names the client it forwards for, so hooks, admission and logs see the real address.
CLIENT_HEADER = "X-LiteSFU-Client"
# ... and the Host it was asked for, whose IP literal leads automatic candidates.
HOST_HEADER = "X-LiteSFU-Host"
SECRET_HEADER = "X-LiteSFU-Secret"  # the front's per-run secret, on every request it sends
SECRET_ENV = "SFU_INTERNAL_SECRET"  # how a worker gets that secret from its front
