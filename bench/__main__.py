"""``python -m bench [--only NAME ...] [--json FILE] [--quick]``: see :mod:`bench.runner`."""

import sys

from bench.runner import main

sys.exit(main())
