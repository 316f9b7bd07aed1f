"""``zhiwen feedback export``: the answers users rated, as an evaluation suite ``zhiwen eval`` runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from zhiwen.consoles import console
from zhiwen.evals.suite import NAME_PATTERN
from zhiwen.memory.feedback import export_dataset, open_feedback_store
from zhiwen.settings import get_settings

__all__ = ["feedback_app"]

feedback_app = typer.Typer(
    help="Ratings of answers (POST /v1/feedback): turn them into regression tests.", no_args_is_help=True
)
err = console(stderr=True)


@feedback_app.command("export")
def export(
    out: Annotated[
        Path, typer.Option("--out", help="A new (or empty) folder for the dataset and its suite.yaml.")
    ],
    rating: Annotated[
        Literal["down", "up", "all"], typer.Option("--rating", help="Which ratings: down, up or all.")
    ] = "down",
    name: Annotated[str, typer.Option("--name", help="The suite's name.")] = "feedback",
) -> None:
    """Write the rated answers as a BEIR dataset plus suite.yaml; run it with `zhiwen eval OUT/suite.yaml`.

    Gold answer: the rater's comment, else a 👍 answer as given (a 👎 without a comment has none).
    """
    if not re.fullmatch(NAME_PATTERN, name):  # it names eval's output folder: evals/runs/<name>
        raise typer.BadParameter(
            f"{name!r}: letters, digits, '.', '-' and '_' only (it becomes a folder's name)",
            param_hint="--name",
        )
    store = open_feedback_store(get_settings())
    try:
        items = store.rated(None if rating == "all" else rating)
    finally:
        store.close()
    written = export_dataset(items, out, name)
    err.print(f"{written} rated answer(s) written to {out}; run them with: zhiwen eval {out / 'suite.yaml'}")
