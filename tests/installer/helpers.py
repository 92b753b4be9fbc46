"""Shared by the installer tests: the checkout, the installer's modules, isolated environments."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"


def installer_module(name: str) -> ModuleType:
    """Import ``installer/<name>.py`` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"parley_installer_{name}", INSTALLER / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: system PATH, a fresh home and XDG folders, no Python settings.

    Nothing from the developer's environment leaks in (no PYTHONPATH, no virtual environment),
    so a packaged program can only use what it carries and what the system has.
    """
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_RUNTIME_DIR": str(home / "run"),
    }
    for name in ("TMPDIR",):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env
