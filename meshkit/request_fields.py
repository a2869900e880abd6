"""Free-text request fields, checked the same way by every service.

A caller's text ends up in events, database rows, logs and other people's screens, so it is
bounded in bytes (what storage and wire limits count), never carries NUL (PostgreSQL text
refuses it, C code truncates at it), and text shown to people loses control and format
characters (bidi overrides can make `gpj.exe` read as `exe.jpg`). Refusals name the field
and the limit; they never echo the value back.
"""

from __future__ import annotations

import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})
"""Unicode control (C0/C1, DEL) and format characters (bidi overrides, zero-width marks)."""


class InvalidFieldError(ValueError):
    """A request field is outside what the service accepts (a client mistake)."""


def _refuse_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidFieldError(f"{field} must not contain NUL characters")


def checked_key(value: str, field: str, max_bytes: int) -> str:
    """An opaque caller-chosen key (compared, never shown): no NUL, at most `max_bytes`."""
    _refuse_nul(value, field)
    if len(value.encode("utf-8")) > max_bytes:
        raise InvalidFieldError(f"{field} is longer than {max_bytes} bytes (UTF-8)")
    return value


def display_text(value: str, field: str, max_bytes: int) -> str:
    """Text shown to people: no NUL, control/format characters stripped, cut (on a
    character boundary) to at most `max_bytes` of UTF-8."""
    _refuse_nul(value, field)
    visible = "".join(
        char for char in value if unicodedata.category(char) not in INVISIBLE_CATEGORIES
    )
    encoded = visible.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")
