"""Desktop-app tests run Qt without a screen: the offscreen platform, set before PySide6 loads."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
