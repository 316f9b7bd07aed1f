"""Waiting for a server process the tests started (zhiwen serve, Prometheus, nginx, a fake upstream)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServerDidNotStart", "wait_for_http"]


class ServerDidNotStart(RuntimeError):
    """The process exited, or did not answer in time; the message names it and ends with its log's tail."""


def wait_for_http(
    url: str, process: subprocess.Popen[Any], what: str, timeout: float = 60.0, log: Path | None = None
) -> None:
    """Until ``url`` answers 200. Raises ``ServerDidNotStart`` if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise ServerDidNotStart(
                f"{what} did not start (exit code {process.poll()})" + (f":\n{tail}" if tail else "")
            )
        time.sleep(0.1)
