"""``python -m gui.cli``: run parley-cli."""

from __future__ import annotations

import sys

from gui.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
