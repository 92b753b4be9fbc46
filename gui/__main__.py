"""``python -m gui`` starts the desktop app, like ``parley``."""

import sys

from gui.app.main import main

sys.exit(main())
