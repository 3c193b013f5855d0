"""`python -m lrcycle demo [--out DIR]` (the command lives in `lrcycle/demo/command.py`)."""

import sys

import matplotlib

matplotlib.use("Agg")  # a command writes its plots to files

from .demo.command import main  # noqa: E402  (after choosing the backend)

if __name__ == "__main__":
    sys.exit(main())
