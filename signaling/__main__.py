"""``python -m signaling`` runs the bare server: ``parley-server`` without the built-in users.

The Echo Test is client code; ``parley-server`` (``python -m gui.server``) plugs it in.
"""

import sys

from signaling.server.cli import main

sys.exit(main())
