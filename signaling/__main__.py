"""``python -m signaling`` runs the server, like ``parley-server``."""

import sys

from signaling.server.cli import main

sys.exit(main())
