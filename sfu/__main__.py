"""`python -m sfu`, kept for the scripts that use it: it becomes `python -m litesfu`.

The media plane imports nothing of the control plane, so this does not import the CLI: it
replaces the process (same pid, arguments, environment and directory) with the real entry.
"""

import os
import sys

if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, "-m", "litesfu", *sys.argv[1:]])
