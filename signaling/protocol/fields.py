"""Validated reads of the fields of a JSON object.

Every value a peer sends passes through here before anything else uses it:
type (``True`` is not an integer here), length, range and allowed characters.
A failed check raises ``bad_message`` naming the field, so a client author
sees at once what to fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from signaling.protocol.errors import bad_message

#: Usernames as sent: any case (they are compared lowercase), ASCII only.
USERNAME_RE = re.compile(r"[A-Za-z0-9._-]{3,32}")
WORD_RE = re.compile(r"[a-z0-9._-]+")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_encodable(value: str) -> bool:
    """Whether ``value`` can be sent as UTF-8.

    JSON's ``\\ud800`` escapes can make lone surrogates, which cannot.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Control (Cc) and invisible format (Cf) characters: bidirectional overrides and isolates,
#: zero-width spaces and joiners, the soft hyphen, U+FEFF. They spoof or break names on screen.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds a control or format character: one name could pose as another."""
    return any(unicodedata.category(char) in _HIDDEN_CATEGORIES for char in value)


def normalize_username(value: str) -> str:
    """Usernames are compared lowercase; the stored and sent form is lowercase too."""
    return value.lower()


class Fields:
    """Typed, validating access to the members of one JSON object.

    ``where`` prefixes the field names in error messages (``media.audio``).
    """

    __slots__ = ("_data", "_where")

    def __init__(self, data: Mapping[str, Any], where: str = "") -> None:
        self._data = data
        self._where = where

    def _name(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def has(self, name: str) -> bool:
        """Whether the field is present and not ``null``."""
        return self._data.get(name) is not None

    def _get(self, name: str, optional: bool) -> Any:
        value = self._data.get(name)
        if value is None and not optional:
            raise bad_message(f"missing field '{self._name(name)}'")
        return value

    def text(
        self,
        name: str,
        *,
        min_len: int = 0,
        max_len: int,
        optional: bool = False,
        control_ok: bool = True,
    ) -> str | None:
        """A string of ``min_len`` to ``max_len`` characters (Unicode code points)."""
        value = self._get(name, optional)
        if value is None:
            return None
        label = self._name(name)
        if type(value) is not str:
            raise bad_message(f"'{label}' must be a string")
        if not min_len <= len(value) <= max_len:
            raise bad_message(f"'{label}' must be {min_len} to {max_len} characters long")
        if not is_encodable(value):
            raise bad_message(f"'{label}' is not valid Unicode")
        if not control_ok and has_control_characters(value):
            raise bad_message(f"'{label}' must not contain control or invisible format characters")
        return value

    def required_text(
        self, name: str, *, min_len: int = 0, max_len: int, control_ok: bool = True
    ) -> str:
        """Like :meth:`text`, for a field that must be present."""
        value = self.text(name, min_len=min_len, max_len=max_len, control_ok=control_ok)
        assert value is not None
        return value

    def username(self, name: str) -> str:
        """A username (3 to 32 of ``a-z 0-9 . _ -``, any case), returned lowercase."""
        return _username(self._get(name, False), self._name(name))

    def usernames(
        self, name: str, *, min_count: int, max_count: int, optional: bool = False
    ) -> tuple[str, ...]:
        """A list of ``min_count`` to ``max_count`` usernames, lowercase, repeats dropped.

        An absent optional list is empty. Each item is checked as :meth:`username` checks
        one, and an error names it by position (``invite[2]``).
        """
        value = self._get(name, optional)
        if value is None:
            return ()
        label = self._name(name)
        if type(value) is not list:
            raise bad_message(f"'{label}' must be a list of usernames")
        if not min_count <= len(value) <= max_count:
            raise bad_message(f"'{label}' must hold {min_count} to {max_count} usernames")
        names = [_username(item, f"{label}[{i}]") for i, item in enumerate(value)]
        return tuple(dict.fromkeys(names))

    def words(self, name: str, *, max_count: int, max_len: int = 32) -> tuple[str, ...]:
        """An optional list of at most ``max_count`` short words (1 to ``max_len`` of
        ``a-z 0-9 . _ -``), repeats dropped; absent is empty."""
        value = self._get(name, True)
        if value is None:
            return ()
        label = self._name(name)
        if type(value) is not list or len(value) > max_count:
            raise bad_message(f"'{label}' must be a list of at most {max_count} words")
        for i, item in enumerate(value):
            if type(item) is not str or not WORD_RE.fullmatch(item) or len(item) > max_len:
                raise bad_message(
                    f"'{label}[{i}]' must be 1 to {max_len} characters of a-z, 0-9, '.', '_' or '-'"
                )
        return tuple(dict.fromkeys(value))

    def call_id(self, name: str = "call_id") -> str:
        """A UUID in its canonical 8-4-4-4-12 hex form, returned lowercase."""
        value = self._get(name, False)
        label = self._name(name)
        if type(value) is not str or not UUID_RE.fullmatch(value.lower()):
            raise bad_message(f"'{label}' must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
        return value.lower()

    def boolean(self, name: str) -> bool:
        """A JSON ``true`` or ``false``."""
        value = self._get(name, False)
        if type(value) is not bool:
            raise bad_message(f"'{self._name(name)}' must be true or false")
        return value

    def integer(self, name: str, *, low: int, high: int, optional: bool = False) -> int | None:
        """A whole number from ``low`` to ``high`` (``1.0`` and ``true`` are refused)."""
        value = self._get(name, optional)
        if value is None:
            return None
        label = self._name(name)
        if type(value) is not int:
            raise bad_message(f"'{label}' must be a whole number")
        if not low <= value <= high:
            raise bad_message(f"'{label}' must be from {low} to {high}")
        return value

    def choice(self, name: str, allowed: frozenset[str]) -> str:
        """One of a fixed set of strings."""
        value = self._get(name, False)
        if type(value) is not str or value not in allowed:
            options = ", ".join(sorted(allowed))
            raise bad_message(f"'{self._name(name)}' must be one of: {options}")
        return value

    def object(self, name: str, *, optional: bool = False) -> Fields | None:
        """A nested JSON object, itself read through :class:`Fields`."""
        value = self._get(name, optional)
        if value is None:
            return None
        if type(value) is not dict:
            raise bad_message(f"'{self._name(name)}' must be an object")
        return Fields(value, self._name(name))


def _username(value: Any, label: str) -> str:
    """``value`` checked as a username and lowercased; ``label`` names it in the error."""
    if type(value) is not str:
        raise bad_message(f"'{label}' must be a string")
    # Match before lowercasing: "\u212a".lower() is an ASCII "k" (KELVIN SIGN).
    if not USERNAME_RE.fullmatch(value):
        raise bad_message(f"'{label}' must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-'")
    return normalize_username(value)
