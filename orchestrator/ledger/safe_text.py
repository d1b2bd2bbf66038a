"""Untrusted text (request and subject ids, paths from a ledger) checked at intake and escaped for display.

Ids come from request files and command lines that other people write. At intake they are bounded
(:data:`MAX_ID_CHARS`) and NUL bytes are refused (SQLite and C tools would truncate at them). On output every
control or format character (newline, carriage return, ANSI escape ``\\x1b``, bidi overrides ...) is printed as an
escape, so an id can neither forge a table row or a log line (``\\n verified``) nor drive the terminal.

    subject = check_id(raw, "subject_id", where="requests.csv row 3: ")
    print(printable(row["request_id"]))        # 'a\\nb' -> 'a\\\\nb'
"""

from __future__ import annotations

import unicodedata

from trainables.errors import UserError

MAX_ID_CHARS = 256
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}  # controls, format (bidi, zero-width), line/para separators


def check_id(value: str, what: str, where: str = "") -> str:
    """``value`` if it is a usable id; UserError (naming ``what`` and ``where``) if too long or holding a NUL."""
    if "\x00" in value:
        raise UserError(f"{where}{what} contains a NUL byte; ids are plain text")
    if len(value) > MAX_ID_CHARS:
        raise UserError(f"{where}{what} is {len(value)} characters long; ids are at most {MAX_ID_CHARS} "
                        f"(starting {printable(value[:40])!r}...)")
    return value


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object) -> str:
    """``str(value)`` with every control / format character escaped (plain text passes through unchanged)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
