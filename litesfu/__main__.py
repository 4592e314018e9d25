"""`python -m litesfu` and the `litesfu` command: the one place where the two planes meet."""

from signaling.cli import main

if __name__ == "__main__":
    main()
