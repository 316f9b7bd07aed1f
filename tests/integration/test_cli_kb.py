"""The ``zhiwen`` command end to end: ingest, search, kb list/docs/delete, and one-line user errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KB = "知识库"
FILES = {
    "fees.md": "# 金卡年费\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n\n## 积分\n\n每消费一元累计一个积分。\n",
    "wire.txt": "International wire transfers take three business days. The fee for a wire transfer is 15 dollars.",
    "branch.html": "<html><head><title>Branch hours</title></head><body><p>Branches open at nine.</p></body></html>",
}


@dataclass
class Home:
    path: Path
    docs: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zhiwen.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def search(self, query: str, *args: str) -> list[dict[str, object]]:
        proc = self.run("search", query, "--kb", KB, "--json", *args)
        assert proc.returncode == 0, proc.stderr
        hits = json.loads(proc.stdout)
        assert isinstance(hits, list)
        return hits


def make_home(base: Path) -> Home:
    home = base / "home"
    return Home(home, base / "docs", {**os.environ, "ZHIWEN_HOME": str(home), "COLUMNS": "200"})


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = make_home(tmp_path_factory.mktemp("cli"))
    home.docs.mkdir()
    for name, text in FILES.items():
        (home.docs / name).write_text(text, encoding="utf-8")
    proc = home.run("ingest", str(home.docs), "--kb", KB, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert f"{KB}: 3 added, 0 replaced, 0 unchanged" in proc.stdout
    return home


@pytest.fixture
def scratch(ingested: Home, tmp_path: Path) -> Home:
    """A private copy of the ingested home (same document folder), for tests that change it."""
    home = Home(tmp_path / "home", ingested.docs, {**ingested.env, "ZHIWEN_HOME": str(tmp_path / "home")})
    shutil.copytree(ingested.path, home.path)
    return home


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("zhiwen: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_search_json(ingested: Home) -> None:
    hits = ingested.search("年费", "--top-k", "2")
    assert 1 <= len(hits) <= 2
    first = hits[0]
    assert set(first) == {"id", "doc_id", "text", "score", "legs", "metadata"}
    assert "三百元" in first["text"]  # type: ignore[operator]
    meta = first["metadata"]
    assert isinstance(meta, dict)
    assert meta["source"] == str(ingested.docs / "fees.md")
    assert meta["title"] == "金卡年费" and meta["heading"] == "金卡年费"
    assert isinstance(meta["start"], int) and meta["end"] > meta["start"]
    assert set(first["legs"]) == {"bm25", "dense"}  # type: ignore[arg-type]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_search_modes(ingested: Home, mode: str) -> None:
    hits = ingested.search("wire transfer fee", "--mode", mode)
    assert hits
    assert all(set(h["legs"]) == {mode} for h in hits)  # type: ignore[arg-type]
    assert hits[0]["metadata"]["source"].endswith("wire.txt")  # type: ignore[index]


def test_search_plain_text(ingested: Home) -> None:
    proc = ingested.run("search", "branches open", "--kb", KB, "--mode", "bm25")
    assert proc.returncode == 0, proc.stderr
    assert "[1]" in proc.stdout and "branch.html" in proc.stdout and "bm25#1" in proc.stdout


def test_kb_list_and_docs(ingested: Home) -> None:
    proc = ingested.run("kb", "list")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith(KB)]
    listed = re.fullmatch(r"(\S+)\s+(\d+) documents\s+(\d+) chunks", line.strip())
    assert listed, line
    assert listed[1] == KB and listed[2] == "3"
    n_chunks = int(listed[3])
    assert n_chunks >= 3
    proc = ingested.run("kb", "docs", "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    rows = [
        re.fullmatch(r"(\w+)\s+(\d+) chunks?\s+(.+)", ln.strip()) for ln in proc.stdout.strip().splitlines()
    ]
    assert all(rows), proc.stdout
    assert sorted(Path(r[3]).name for r in rows if r) == sorted(FILES)
    assert sum(int(r[2]) for r in rows if r) == n_chunks


def test_reingest_is_unchanged(scratch: Home) -> None:
    proc = scratch.run("ingest", str(scratch.docs), "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert "0 added, 0 replaced, 3 unchanged, 0 chunks indexed, 0 skipped" in proc.stdout


def test_kb_delete(scratch: Home) -> None:
    source = str(scratch.docs / "wire.txt")  # test_search_modes shows it is found before
    proc = scratch.run("kb", "delete", source, "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"deleted {source} (")
    for mode in ("bm25", "dense", "hybrid"):
        hits = scratch.search("wire transfer fee", "--mode", mode, "--top-k", "50")
        assert all(h["metadata"]["source"] != source for h in hits)  # type: ignore[index]
    listing = scratch.run("kb", "list").stdout
    assert re.search(rf"^{KB}\s+2 documents", listing, re.MULTILINE), listing
    again = scratch.run("kb", "delete", source, "--kb", KB)
    assert_user_error(again, "no document")


def test_console_script(ingested: Home) -> None:
    script = Path(sys.executable).with_name("zhiwen")
    if not script.exists():
        pytest.skip("no zhiwen console script next to the interpreter")
    proc = subprocess.run(
        [str(script), "search", "积分", "--kb", KB, "--json", "--mode", "bm25"],
        env=ingested.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "积分" in json.loads(proc.stdout)[0]["text"]


def test_unknown_kb(ingested: Home) -> None:
    assert_user_error(ingested.run("search", "年费", "--kb", "nope"), "no knowledge base named 'nope'", KB)
    assert_user_error(ingested.run("search", "年费"), "named 'default'", "zhiwen ingest PATH --kb default")


def test_version(ingested: Home) -> None:
    from zhiwen import __version__

    proc = ingested.run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"zhiwen {__version__}", proc.stderr


def test_ingest_and_search_share_the_default_knowledge_base(scratch: Home) -> None:
    proc = scratch.run("ingest", str(scratch.docs))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("default: ")
    assert 'zhiwen ask "…"   ·' in proc.stderr, "the hint needs no --kb for the default knowledge base"
    found = scratch.run("search", "积分", "--json", "--mode", "bm25")
    assert found.returncode == 0, found.stderr
    assert "积分" in json.loads(found.stdout)[0]["text"]


def test_bad_mode(ingested: Home) -> None:
    assert_user_error(ingested.run("search", "年费", "--kb", KB, "--mode", "sparse"), "--mode", "'sparse'")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["eval", "smoke", "--limit", "0"], ["'--limit'", "zhiwen eval --help"]),
        (["eval", "smoke", "--limit", "abc"], ["'--limit'", "integer"]),
        (["ask"], ["Missing argument 'question'", "zhiwen ask --help"]),
        (["ask", "年费", "--bogus"], ["No such option: --bogus"]),
        (["nosuchcommand"], ["No such command 'nosuchcommand'", "zhiwen --help"]),
        (["serve", "--port", "0"], ["'--port'"]),
    ],
)
def test_usage_errors_are_one_line(ingested: Home, args: list[str], fragments: list[str]) -> None:
    # click's own framed usage panel took ten lines; every other error here is one line.
    proc = ingested.run(*args)
    assert proc.returncode == 2
    assert_user_error(proc, *fragments)


def test_help_and_bare_groups_still_show_help(ingested: Home) -> None:
    assert ingested.run("--help").returncode == 0
    bare = ingested.run("kb")
    assert (
        bare.returncode == 2
        and "zhiwen kb" in bare.stdout + bare.stderr
        and "list" in bare.stdout + bare.stderr
    )


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query(ingested: Home, query: str) -> None:
    assert_user_error(ingested.run("search", query, "--kb", KB), "empty")


def test_ingest_of_nothing_readable(ingested: Home, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pptx"
    bad.write_bytes(b"PK")
    proc = ingested.run("ingest", str(bad), str(tmp_path / "missing.txt"), "--kb", "other")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bad.pptx: unsupported file type" in proc.stderr and "missing.txt: no such file" in proc.stderr
    assert "other" not in ingested.run("kb", "list").stdout, (
        "a knowledge base made empty by this ingest is gone"
    )


def test_ingest_of_only_missing_paths_is_a_one_line_error(ingested: Home, tmp_path: Path) -> None:
    proc = ingested.run("ingest", str(tmp_path / "typo"), "--kb", "typo-kb")
    assert_user_error(proc, "no such file or folder", "typo", "nothing ingested")
    assert "typo-kb" not in ingested.run("kb", "list").stdout


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "ZHIWEN_CHECKPOINT_URL",
            "mysql://app:hunter2@db/threads",
            "ZHIWEN_CHECKPOINT_URL must be a postgresql:// URL",
        ),
        ("ZHIWEN_CHROMA_URL", "chroma:8000", "ZHIWEN_CHROMA_URL must be an http(s)://host:port URL"),
        ("ZHIWEN_CHROMA_URL", "ftp://ops:hunter2@chroma", "(got 'ftp://ops:***@chroma')"),
    ],
)
def test_a_store_url_of_the_wrong_kind_is_a_one_line_error(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    (tmp_path / "a.txt").write_text("The wire transfer fee is 15 dollars.", encoding="utf-8")
    env = {**os.environ, "ZHIWEN_HOME": str(tmp_path / "home")}
    args: tuple[str, ...] = ("ingest", str(tmp_path / "a.txt"), "--kb", "x")
    if variable == "ZHIWEN_CHECKPOINT_URL":  # threads are opened by ask, on an existing knowledge base
        run = [sys.executable, "-m", "zhiwen.cli", *args]
        assert subprocess.run(run, env=env, capture_output=True, timeout=300, check=False).returncode == 0
        args = ("ask", "What is the fee?", "--kb", "x")
    env[variable] = value
    proc = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("zhiwen: error: ") and says in line, line
    assert "hunter2" not in proc.stderr + proc.stdout, "passwords in URLs are never printed"
