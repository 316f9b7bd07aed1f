"""A file's path as the text a document is known by: storable, printable, the same on every run.

A file name that is not UTF-8 (``café.txt`` written as Latin-1 bytes by an old system) reaches Python with
each undecodable byte as a lone surrogate, which UTF-8 cannot encode: hashing it, storing it in SQLite or
PostgreSQL, or printing it to stdout raised ``UnicodeEncodeError``. Such a byte is written here as ``%XX``
(``caf%E9.txt``), as in a URL; every other name is unchanged. Not Python's ``\\xe9``: the server shows
sources by the part after the last ``/`` or ``\\`` (``public_source``), which cut that to ``xe9.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["source_name"]

_ESCAPED = range(0xDC80, 0xDD00)  # how surrogateescape keeps the bytes 0x80-0xFF


def source_name(path: Path | str) -> str:
    """``path`` with each byte of its name that is not UTF-8 written as ``%XX``.

    ``zhiwen kb delete`` passes what the user typed through it too, so the raw path finds the document. A
    surrogate no file system produces (from a string built elsewhere) becomes U+FFFD."""
    text = os.fspath(path)
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return "".join(
        f"%{ord(c) - 0xDC00:02X}" if ord(c) in _ESCAPED else "\ufffd" if "\ud800" <= c <= "\udfff" else c
        for c in text
    )
