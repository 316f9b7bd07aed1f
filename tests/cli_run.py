"""The real `zhiwen` command in a subprocess, with a ``ZHIWEN_HOME`` of its own and no other ZHIWEN_ setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["Cli"]


class Cli:
    """``run(*args, **env)``: one `zhiwen` command, ``env`` added to its environment (e.g. a store URL)."""

    def __init__(self, home: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
        self.env |= {"ZHIWEN_HOME": str(home), "COLUMNS": "300"}

    def run(self, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zhiwen.cli", *args],
            env=self.env | env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def kbs(self) -> str:
        """`zhiwen kb list`'s output."""
        listing = self.run("kb", "list")
        assert listing.returncode == 0, listing.stderr
        return listing.stdout
