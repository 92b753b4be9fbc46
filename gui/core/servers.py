"""Several addresses of one Parley service, and which one to try next. Pure: no sockets.

A service run as several ``parley-server`` instances over one database (and one bus) can be
reached at any of them: the account, the saved session token and the calls are the same on
each. The client keeps the list the user gave (settings, one per line, or ``--server``
repeated) and, when it connects or its connection drops, tries the one that last worked
first, then the others in the order given. A server whose certificate is refused (not
trusted, or not the pinned one) is skipped from then on, said once, and does not stop the
others from being tried; only when every server is refused does the client give up.

:func:`server_address` and :func:`parse_servers` read what a person typed, with a clear
``ValueError`` for what cannot be an address.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["ServerChoice", "parse_servers", "server_address", "server_argument", "server_list"]

_SEPARATORS = re.compile(r"[\s,]+")


def server_address(text: str) -> str:
    """``HOST:PORT``, ``ws://HOST:PORT`` or ``wss://HOST:PORT/ws`` as a full ``ws[s]://…/ws`` URL.

    Raises ``ValueError`` with a one-line reason when it cannot be a server's address.
    """
    url = text.strip()
    if not url:
        raise ValueError("a server address is empty")
    if "://" not in url:
        url = f"ws://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"'{text.strip()}' has no valid port number") from None
    if parts.scheme.lower() not in ("ws", "wss"):
        raise ValueError(f"'{text.strip()}' is not a ws:// or wss:// address")
    if not parts.hostname:
        raise ValueError(f"'{text.strip()}' names no server")
    if port == 0:
        raise ValueError(f"'{text.strip()}' has no valid port number")
    if not url.rstrip("/").endswith("/ws"):
        url = url.rstrip("/") + "/ws"
    return url


def server_argument(text: str) -> str:
    """:func:`server_address` as an ``argparse`` type (``--server``, which may be repeated)."""
    try:
        return server_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def server_list(urls: Iterable[str]) -> list[str]:
    """The addresses, each made full (:func:`server_address`), without repeats, order kept."""
    seen: list[str] = []
    for text in urls:
        url = server_address(text)
        if url not in seen:
            seen.append(url)
    return seen


def parse_servers(text: str) -> list[str]:
    """What a person typed: addresses one per line (or separated by commas or spaces).

    Empty text is an empty list (the built-in server). Raises ``ValueError`` naming the
    line of the first address that is not one.
    """
    urls: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        for word in _SEPARATORS.split(line.strip()):
            if not word:
                continue
            try:
                url = server_address(word)
            except ValueError as exc:
                where = f"line {number}: " if len(text.strip().splitlines()) > 1 else ""
                raise ValueError(f"{where}{exc}") from None
            if url not in urls:
                urls.append(url)
    return urls


@dataclass(slots=True)
class ServerChoice:
    """The servers of one service, the one that last worked, and those refused (by TLS)."""

    urls: list[str]
    last_good: str | None = None
    #: Server → why it is skipped (its certificate was refused); kept until :meth:`retry_all`.
    refused: dict[str, Exception] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no server to connect to")
        if self.last_good not in self.urls:
            self.last_good = None

    @classmethod
    def of(cls, urls: str | Sequence[str], last_good: str | None = None) -> ServerChoice:
        """From one URL or several (as given: not normalised, repeats dropped)."""
        given = [urls] if isinstance(urls, str) else list(urls)
        return cls(list(dict.fromkeys(given)), last_good)

    def order(self) -> list[str]:
        """The servers to try now: the last good one first, then the others as given."""
        candidates = [url for url in self.urls if url not in self.refused]
        if self.last_good in candidates:
            candidates.remove(self.last_good)
            candidates.insert(0, self.last_good)
        return candidates

    def good(self, url: str) -> None:
        """``url`` worked (logged in): it is tried first next time."""
        if url in self.urls:
            self.last_good = url
            self.refused.pop(url, None)

    def refuse(self, url: str, reason: Exception) -> None:
        """``url``'s certificate was refused: skip it until :meth:`retry_all`."""
        self.refused[url] = reason

    @property
    def all_refused(self) -> bool:
        """Whether no server is left to try."""
        return not self.order()

    def retry_all(self) -> None:
        """A fresh start (the user connects again): every server is tried again."""
        self.refused.clear()

    @property
    def several(self) -> bool:
        """Whether there is more than one server."""
        return len(self.urls) > 1
