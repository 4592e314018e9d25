"""`python -m sfu`: the program entry, the one place where control and media planes meet."""

from signaling.cli import main

main()
