"""``stage_progress``: a bar on a terminal, plain lines in a log, where a bar would show only at the end."""

from __future__ import annotations

import io
import re

from rich.console import Console

from zhiwen.stage_progress import stage_progress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=120), buffer


def test_a_log_gets_a_line_at_each_tenth_and_at_the_end() -> None:
    console, buffer = _console(terminal=False)
    with stage_progress(console) as update:
        update("embedding chunks", 0, None)  # total not known yet: nothing to say
        for done in range(0, 41):
            update("hybrid", done, 40)
    lines = buffer.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"hybrid: {4 * k}/40 ({10 * k}%)" for k in range(11)]
    assert all(re.fullmatch(r".*, \d+:\d\d", line) for line in lines), lines  # elapsed, m:ss


def test_stages_are_logged_apart() -> None:
    console, buffer = _console(terminal=False)
    with stage_progress(console) as update:
        update("hybrid", 0, 2)
        update("bm25", 0, 2)
        update("hybrid", 2, 2)
    lines = [line.rsplit(",", 1)[0] for line in buffer.getvalue().splitlines()]
    assert lines == ["hybrid: 0/2 (0%)", "bm25: 0/2 (0%)", "hybrid: 2/2 (100%)"]


def test_a_terminal_gets_the_bar_not_the_lines() -> None:
    console, buffer = _console(terminal=True)
    with stage_progress(console) as update:
        for done in range(0, 41):
            update("hybrid", done, 40)
    shown = buffer.getvalue()
    assert "40/40" in shown and "(100%)" not in shown
