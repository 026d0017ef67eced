"""Talk to your digital twin from a terminal: ``python -m pipelines.twin_chat --help``.

The command's home; the code lives in ``pipelines.chat`` (the live conversation and its CLI).
"""
from __future__ import annotations

import sys

from .chat.cli import answer_one, main  # noqa: F401 - answer_one for scripts

if __name__ == "__main__":
    sys.exit(main())
