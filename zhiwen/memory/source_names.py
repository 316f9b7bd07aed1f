"""A file's path as the text a document is known by: storable, printable, the same on every run.

A file name that is not UTF-8 (``caf\\xe9.txt`` written by a Latin-1 system) reaches Python with each
undecodable byte as a lone surrogate, which UTF-8 cannot encode: hashing it, storing it in SQLite or
PostgreSQL, or printing it to stdout raised ``UnicodeEncodeError``. Such a byte is written here as ``\\xNN``,
the way Python shows it; every other name is unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["source_name"]


def source_name(path: Path | str) -> str:
    """``path`` with each byte of its name that is not UTF-8 written as ``\\xNN``.

    ``zhiwen kb delete`` passes what the user typed through it too, so the raw path finds the document.
    """
    text = os.fspath(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system produces (from a str built elsewhere)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
