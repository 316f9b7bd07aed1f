"""The consoles the command line prints through.

Rich wraps every line at 80 columns when output is not a terminal, so a piped `zhiwen kb docs | cut -f3`
split source paths at their spaces and `zhiwen ask ... > answer.txt` broke the answer mid-sentence. These
consoles never wrap text they print; a table is as wide as its content when piped (at a terminal, as wide as
the terminal).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "printable", "shown"]

_UNBOUNDED = 100_000  # columns given to a table when output is a file or a pipe


def console(stderr: bool = False) -> Console:
    """A console on standard output (or error) that does not wrap printed text."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else _UNBOUNDED
    return Console(stderr=stderr, soft_wrap=True, width=width)


# C0 and C1 controls (ESC starts the terminal's own commands: a file named "\x1b]0;PWNED\x07" retitled the
# window, "\x1b[2J" cleared it; a tab or a newline split a `kb docs` row) and bidirectional overrides.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` from a document or a file name, safe to print: each control character written as an escape."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def shown(text: str) -> str:
    """``printable(text)`` inside a rich markup string: its brackets are text ("[/]" ended search in an error)."""
    return escape(printable(text))
