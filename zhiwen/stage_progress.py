"""Progress of long command-line work (an ingest, an evaluation suite), on a terminal and in a log.

rich draws its bar only on a terminal: with stderr sent to a file (``nohup zhiwen eval rgb-zh 2> run.log``,
a CI job) it prints the bar once, when the work ends, so an hour-long suite or a 20-minute ingest logs
nothing while it runs. Neither rich nor typer has a plain-line mode, so this one is ours: in a log, one line
when a stage starts, at each tenth of it and when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["StageUpdate", "stage_progress"]

StageUpdate = Callable[[str, int, "int | None"], None]
"""``update(stage, done, total)``: ``total`` None while it is not known yet."""


@contextmanager
def stage_progress(console: Console) -> Iterator[StageUpdate]:
    """A bar per stage on a terminal; plain lines (``stage: done/total, m:ss``) otherwise."""
    if console.is_terminal:
        with Progress(
            TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        ) as bar:  # fmt: skip
            tasks: dict[str, TaskID] = {}

            def draw(stage: str, done: int, total: int | None) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            yield draw
        return

    started: dict[str, float] = {}
    logged: dict[str, int] = {}  # the last tenth logged, per stage

    def log(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        since = started.setdefault(stage, now)
        if not total:
            return  # nothing to measure against yet
        tenth = min(10, 10 * done // total)
        if logged.get(stage) == tenth:
            return
        logged[stage] = tenth
        elapsed = int(now - since)
        console.print(
            f"{stage}: {done}/{total} ({tenth * 10}%), {elapsed // 60}:{elapsed % 60:02d}",
            highlight=False,
            markup=False,
        )

    yield log
