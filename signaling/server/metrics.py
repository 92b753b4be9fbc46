"""Counters and gauges, rendered in the Prometheus text format for ``GET /metrics``.

Small on purpose: a handful of labelled counters needs no client library.
Label values are the protocol's own names (message types, error codes, call
reasons), never anything a client chose, so the series stay few.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    """The server's figures."""

    def __init__(self) -> None:
        self.messages_in: Counter[str] = Counter()
        self.messages_out: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.meetings: Counter[str] = Counter()
        self.connections_total = 0
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time."""
        self._gauges[name] = (help_text, read)

    def render(self) -> str:
        """The exposition text (format 0.0.4)."""
        lines: list[str] = []
        for name, (help_text, read) in self._gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        lines += [
            "# HELP parley_connections_total WebSocket connections accepted since start.",
            "# TYPE parley_connections_total counter",
            f"parley_connections_total {self.connections_total}",
        ]
        lines += _counter(
            "parley_messages_in_total", "Messages received, by type.", "type", self.messages_in
        )
        lines += _counter(
            "parley_messages_out_total", "Messages sent, by type.", "type", self.messages_out
        )
        lines += _counter(
            "parley_errors_total", "Error replies sent, by code.", "code", self.errors
        )
        lines += _counter(
            "parley_calls_total", "Calls ended, by outcome (reason).", "outcome", self.calls
        )
        lines += _counter(
            "parley_meetings_total", "Meetings ended, by reason.", "reason", self.meetings
        )
        return "\n".join(lines) + "\n"


def _counter(name: str, help_text: str, label: str, values: Counter[str]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines += [f'{name}{{{label}="{key}"}} {count}' for key, count in sorted(values.items())]
    return lines
