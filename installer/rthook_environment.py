"""PyInstaller runtime hook: programs the app starts get the user's own library search path.

On Linux the bootloader points ``LD_LIBRARY_PATH`` at the bundle's ``_internal`` folder so that
the bundle finds its libraries. The dynamic loader reads that variable once, when the process
starts, so the bundle no longer needs it once Python runs; left in the environment, it would make
every program the app starts (a browser opened for a link, a helper from Qt) load the bundle's
Qt and ICU instead of its own. The bootloader keeps the user's value as ``LD_LIBRARY_PATH_ORIG``.
"""

import os

_original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
if _original is not None:
    os.environ["LD_LIBRARY_PATH"] = _original
else:
    os.environ.pop("LD_LIBRARY_PATH", None)
