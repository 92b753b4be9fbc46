"""Fixtures shared by the lab's test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.relay import TurnLab, turn_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[TurnLab]:
    """The lab with coturn and parley-server (``tests/net/relay.py``), built once per module;
    each test puts back what it changes in the homes."""
    with turn_lab() as built:
        yield built
