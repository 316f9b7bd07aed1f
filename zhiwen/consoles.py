"""The consoles the command line prints through.

Rich wraps every line at 80 columns when output is not a terminal, so a piped `zhiwen kb docs | cut -f3`
split source paths at their spaces and `zhiwen ask ... > answer.txt` broke the answer mid-sentence. These
consoles never wrap text they print; a table is as wide as its content when piped (at a terminal, as wide as
the terminal).
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["console"]

_UNBOUNDED = 100_000  # columns given to a table when output is a file or a pipe


def console(stderr: bool = False) -> Console:
    """A console on standard output (or error) that does not wrap printed text."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else _UNBOUNDED
    return Console(stderr=stderr, soft_wrap=True, width=width)
