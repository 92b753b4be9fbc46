"""Dependencies between Parley's layers point one way (the diagram in docs/architecture.md).

Every module under ``signaling/`` and ``gui/`` is parsed (not imported) and each import
it holds, wherever it is (top level, inside a function, under ``TYPE_CHECKING``), is
checked against the table below. A new package or top-level module fails here until it
is given a place in the table, so the table stays the whole truth.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("signaling", "gui")

#: Each layer (a package, or one module that composes layers) and the project layers it may
#: import besides itself. A module belongs to the longest name here that it starts with.
ALLOWED: dict[str, frozenset[str]] = {
    # The server side: nothing of the client.
    "signaling": frozenset(),  # the package itself: the version
    "signaling.protocol": frozenset(),
    "signaling.server": frozenset({"signaling", "signaling.protocol"}),
    "signaling.__main__": frozenset({"signaling.server"}),  # the bare server's root
    # The client side, bottom up.
    "gui": frozenset(),
    "gui.media": frozenset(),
    "gui.core": frozenset({"gui.media", "signaling.protocol"}),
    "gui.bots": frozenset({"gui.core", "gui.media", "signaling.protocol"}),
    "gui.devices": frozenset(),
    "gui.qt_loop": frozenset(),  # the asyncio loop on Qt's (qasync's, mended)
    "gui.app": frozenset(
        {
            "gui.core",
            "gui.media",
            "gui.devices",
            "gui.embedded",
            "gui.qt_loop",
            "signaling",
            "signaling.protocol",
        }
    ),
    # Composition roots: the only places where the server and the client's bots meet
    # (parley-server, the app's built-in server), and parley-cli.
    "gui.server": frozenset({"gui.bots", "signaling.server", "signaling.protocol"}),
    "gui.embedded": frozenset({"gui.bots", "gui.core", "signaling.server"}),
    "gui.cli": frozenset(
        {"gui.core", "gui.media", "gui.devices", "gui.qt_loop", "signaling", "signaling.protocol"}
    ),  # parley-cli
    "gui.__main__": frozenset({"gui.app"}),
    # parley --self-test starts a server of its own, as the installed app would, and says
    # whether screen capture would work on this desktop (gui.devices.screen.support).
    "gui.app.self_test": frozenset(
        {"gui.app", "gui.core", "gui.media", "gui.devices", "signaling", "signaling.server"}
    ),
}

#: Layers that run without Qt: the server, and the client's core that parley-server's bots,
#: the tests and the benchmarks use in plain asyncio.
QT_FREE = ("signaling", "gui.media", "gui.core", "gui.bots", "gui.server", "gui.embedded")
QT = ("PySide6", "qasync", "shiboken6")


def layer_of(module: str) -> str | None:
    """The entry of :data:`ALLOWED` that ``module`` belongs to (``None``: no place yet).

    The top packages' entries hold their ``__init__`` only, so that a new module or package
    directly under ``gui/`` or ``signaling/`` has no layer until it is given one.
    """
    best = None
    for name in ALLOWED:
        inside = module.startswith(name + ".") and name not in PACKAGES
        if (module == name or inside) and len(name) > len(best or ""):
            best = name
    return best


def target_layer(imported: str) -> str | None:
    """The layer an imported name comes from (``gui.core.x.Name`` -> ``gui.core``)."""
    parts = imported.split(".")
    while parts:
        layer = layer_of(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None


def module_name(path: Path) -> str:
    """``gui/core/call_session.py`` -> ``gui.core.call_session`` (a package is its folder)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every name ``source`` imports, anywhere in it, with its line (relative ones resolved).

    ``from a.b import c`` gives ``a.b.c``: ``c`` may be a module of its own layer.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if base else alias.name
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What is wrong with ``module``'s imports, one line each (empty: nothing)."""
    layer = layer_of(module)
    if layer is None:
        return [f"{module}: no layer; give it a place in tests/test_layers.py and the diagram"]
    allowed = ALLOWED[layer] | {layer}
    found = []
    qt_free = any(layer == name or layer.startswith(name + ".") for name in QT_FREE)
    for line, imported in imports(source, module, is_package):
        top = imported.split(".")[0]
        problem = None
        if top in QT and qt_free:
            problem = f"{module}:{line} imports {top}, but {layer} is Qt-free"
        elif top in PACKAGES:
            target = target_layer(imported)
            # A module of this layer with an entry of its own (gui.app.self_test) is its own.
            nested = target and target.startswith(layer + ".") and layer not in PACKAGES
            if target is not None and target not in allowed and not nested:
                problem = f"{module}:{line} imports from {target}, which {layer} may not use"
        if problem is not None and problem not in found:  # once per line, not once per name
            found.append(problem)
    return found


def project_modules() -> list[Path]:
    """Every ``.py`` file of the two packages."""
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_import_follows_the_layers() -> None:
    paths = project_modules()
    assert len(paths) > 50, "the packages were not found"
    problems = []
    for path in paths:
        source = path.read_text(encoding="utf-8")
        problems += violations(source, module_name(path), path.name == "__init__.py")
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("signaling.server.x", "from gui.core import call_session", "from gui.core,"),
        ("signaling.server.x", "def f():\n    import gui.media.pacing", "from gui.media,"),
        (
            "signaling.server.x",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gui.bots import echo",
            "from gui.bots,",
        ),
        ("signaling.protocol.x", "import signaling.server.hub", "from signaling.server,"),
        ("gui.core.x", "from PySide6.QtCore import QObject", "is Qt-free"),
        ("gui.media.x", "import qasync", "is Qt-free"),
        ("gui.media.x", "from gui.core.call_machine import CallState", "from gui.core,"),
        ("gui.core.x", "from gui.app import controller", "from gui.app,"),
        ("gui.bots.x", "from signaling.server.hub import Hub", "from signaling.server,"),
        ("gui.bots.x", "importlib.import_module('gui.app.ui')", "from gui.app,"),
        ("signaling.server.x", "from .. import protocol", ""),
        ("signaling.server.x", "from ... import gui", "from gui,"),
        ("gui.newthing", "", "no layer"),
    ],
)
def test_the_check_catches_each_kind_of_import(module: str, source: str, expected: str) -> None:
    found = violations(source, module)
    if expected:
        assert len(found) == 1 and expected in found[0], found
    else:
        assert found == []
