"""A Chroma server (ZHIWEN_CHROMA_URL) that does not answer: one line naming it, its password redacted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_run import Cli

from zhiwen import service
from zhiwen.errors import StoreUnavailable
from zhiwen.memory import registry
from zhiwen.memory.kb import kb_exists
from zhiwen.settings import get_settings

pytestmark = pytest.mark.integration

URL = "http://ops:hunter2@127.0.0.1:1"  # nothing listens on port 1: refused at once
SAYS = "zhiwen: error: cannot reach the Chroma server at http://ops:***@127.0.0.1:1: "


def test_each_command_that_needs_the_server_says_in_one_line_it_cannot_reach_it(tmp_path: Path) -> None:
    # Each ended in a 100-line traceback: ValueError: Could not connect to a Chroma server.
    fees = tmp_path / "fees.txt"
    fees.write_text("The annual fee of the gold card is 300 yuan.", encoding="utf-8")
    cli = Cli(tmp_path / "home")
    assert cli.run("ingest", str(fees), "--kb", "t1").returncode == 0  # embedded Chroma
    for args in (
        ("ingest", str(fees), "--kb", "t9"),
        ("search", "fee", "--kb", "t1", "--mode", "bm25", "--top-k", "1"),
        ("kb", "docs", "--kb", "t1"),
        ("kb", "drop", "t1", "--yes"),
    ):
        proc = cli.run(*args, ZHIWEN_CHROMA_URL=URL)
        assert proc.returncode == 1, args
        (line,) = proc.stderr.splitlines()
        assert line.startswith(SAYS), line
        assert "hunter2" not in proc.stdout + proc.stderr
    assert re.search(r"^t1\s+1 documents", cli.kbs(), re.MULTILINE), "a failed drop leaves the base whole"


def test_it_is_a_store_unavailable_error_which_the_http_server_answers_with_503(
    zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIWEN_CHROMA_URL", URL)
    get_settings.cache_clear()
    try:
        with pytest.raises(StoreUnavailable, match=re.escape(SAYS.removeprefix("zhiwen: error: "))):
            service.open_kb("t1", create=True)
        assert not kb_exists(get_settings().kb_root, "t1"), "a base made and not opened is removed again"
    finally:
        registry.close_all()
