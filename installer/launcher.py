"""The entry point of the packaged app: one program, three commands.

A PyInstaller bundle holds one copy of Python, Qt, PyAV and the rest, shared by ``parley``,
``parley-cli`` and ``parley-server``. On Linux and macOS the bundle has a single executable
(``parley``) and the other two names are symbolic links to it; on Windows, where a windowed
and a console program must be separate files, it has three small executables built from this
same script. Either way the command is chosen by the name the program was started under.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def command_name(argv0: str) -> str:
    """``parley``, ``parley-cli`` or ``parley-server``, from the name the program was run as."""
    name = Path(argv0).name.lower().removesuffix(".exe")
    for known in ("parley-cli", "parley-server"):
        if name.startswith(known):
            return known
    return "parley"


def entry_point(command: str) -> Callable[[], int]:
    """The ``main`` function of ``command``."""
    if command == "parley-cli":
        from gui.cli import main as cli_main

        return cli_main
    if command == "parley-server":
        from gui.server import main as server_main

        return server_main
    from gui.app.main import main as app_main

    return app_main


if __name__ == "__main__":
    sys.exit(entry_point(command_name(sys.argv[0]))())
