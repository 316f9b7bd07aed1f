"""Every command's ``--help``: a flag is shown as taking no value (typer 0.29's rich help showed ``<bool>``)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from zhiwen.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(group, "commands"):  # a group (typer vendors click: its classes are not click's)
        for name, sub in sorted(group.commands.items()):
            found += _commands(sub, (*path, name))
    return found


ROOT = typer.main.get_command(app)
COMMANDS = _commands(ROOT)


def test_every_command_is_walked() -> None:
    assert {("search",), ("ask",), ("kb", "drop"), ("keys", "create"), ("eval",), ("serve",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "zhiwen" for p in COMMANDS])
def test_help_shows_no_value_for_a_flag(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "160"}, terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    assert "--help" in result.output
