"""Deprecated alias, kept for one release: the tokens live in signaling.security.auth now, and
`python -m signaling.auth mint ...` still mints one."""

from signaling.security.auth import Authenticator, main, mint

__all__ = ["Authenticator", "main", "mint"]

if __name__ == "__main__":
    main()
