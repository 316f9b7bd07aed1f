"""``zhiwen ask`` and ``zhiwen chat`` as a user runs them, against the scripted OpenAI-compatible upstream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zhiwen.nodes.prompts import system_prompt, withdrawn_notice
from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer

pytestmark = pytest.mark.integration

KB = "bank"
DOC = "International wire transfers take three business days. The fee for a wire transfer is 15 dollars.\n"
QUESTION = "How long does an international wire transfer take?"
ANSWER = "International wire transfers take three business days."
UNGROUNDED = "Banks on Mars open at eight every morning."


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(ScriptedLLM(default=Script(ANSWER, chunk_size=4))) as server:
        yield server


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedLLMServer) -> dict[str, str]:
    base = tmp_path_factory.mktemp("ask")
    (base / "wire.txt").write_text(DOC, encoding="utf-8")
    env = {**os.environ, "ZHIWEN_HOME": str(base / "home"), "COLUMNS": "200",
           "ZHIWEN_LLM_BASE_URL": upstream.base_url, "ZHIWEN_LLM_MODEL": "scripted"}  # fmt: skip
    proc = _run(env, "ingest", str(base / "wire.txt"), "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    return env


@pytest.fixture
def llm(upstream: ScriptedLLMServer) -> ScriptedLLM:
    upstream.llm._queue.clear()
    upstream.llm.requests.clear()
    return upstream.llm


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", *args], env=env, input=stdin,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_ask_streams_the_answer_once_with_its_source(env: dict[str, str], llm: ScriptedLLM) -> None:
    proc = _run(env, "ask", QUESTION, "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("three business days") == 1, proc.stdout
    assert "[1]" in proc.stdout and "wire.txt" in proc.stdout


def test_ask_says_why_a_streamed_citation_is_not_listed(env: dict[str, str], llm: ScriptedLLM) -> None:
    llm.enqueue(Script(f"{ANSWER} [1] [2]", chunk_size=4))  # the knowledge base has one source
    proc = _run(env, "ask", QUESTION, "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert "[1] wire.txt" in proc.stdout, proc.stdout
    assert "[2] removed: there is no such source" in proc.stdout, proc.stdout


def test_ask_a_greeting_prints_the_reply_once(env: dict[str, str], llm: ScriptedLLM) -> None:
    llm.enqueue(Script("Hello! Ask me about your documents.", chunk_size=5))
    proc = _run(env, "ask", "hello", "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Ask me about your documents.") == 1, proc.stdout


def test_persona_setting_reaches_the_model_prompt(env: dict[str, str], llm: ScriptedLLM) -> None:
    proc = _run({**env, "ZHIWEN_PERSONA": "general"}, "ask", QUESTION, "--kb", KB)
    assert proc.returncode == 0, proc.stderr
    assert llm.requests[-1]["messages"][0]["content"] == system_prompt("en", "general")


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("ZHIWEN_PERSONA", "insurer", ("ask", QUESTION, "--kb", KB)),
        ("ZHIWEN_LLM_THREADS", "0", ("kb", "list")),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_the_variable(
    env: dict[str, str], variable: str, value: str, args: tuple[str, ...]
) -> None:
    proc = _run({**env, variable: value}, *args)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"zhiwen: error: {variable}: ") and line.endswith(f"(got '{value}')"), line


def test_ask_json_has_the_turn_fields(env: dict[str, str], llm: ScriptedLLM) -> None:
    proc = _run(env, "ask", QUESTION, "--kb", KB, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"answer", "sources", "quality", "reasoning", "intent"} <= set(out)
    assert out["answer"].startswith(ANSWER.rstrip(".")) and out["quality"]["verdict"] == "pass"
    assert out["sources"][0]["source"].endswith("wire.txt")


def test_checked_only_never_shows_a_refused_draft(env: dict[str, str], llm: ScriptedLLM) -> None:
    llm.enqueue(Script(UNGROUNDED), Script(UNGROUNDED))
    streamed = _run(env, "ask", QUESTION, "--kb", KB)
    assert "Mars" in streamed.stdout  # the default streams the draft before the gate withholds it
    out = " ".join(streamed.stdout.split())  # rich wraps long lines
    # ... then says it is withdrawn, and quotes the source sentence that answers (the gate's fall-back)
    quote = 'The passage closest to your question says: "'
    assert out.index("Mars") < out.index(withdrawn_notice("en")) < out.index(quote), out
    llm.enqueue(Script(UNGROUNDED), Script(UNGROUNDED))
    held = _run(env, "ask", QUESTION, "--kb", KB, "--checked-only")
    assert held.returncode == 0, held.stderr
    assert "Mars" not in held.stdout and quote in " ".join(held.stdout.split())  # only the quote
    assert "checking the sources again" not in held.stdout


def test_checked_only_prints_a_passed_answer_once(env: dict[str, str], llm: ScriptedLLM) -> None:
    proc = _run(env, "ask", QUESTION, "--kb", KB, "--checked-only")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("three business days") == 1, proc.stdout
    assert "[1]" in proc.stdout


def test_chat_reads_questions_until_eof(env: dict[str, str], llm: ScriptedLLM) -> None:
    llm.enqueue(Script("Hello!"), Script(ANSWER))
    proc = _run(env, "chat", "--kb", KB, stdin=f"hello\n{QUESTION}\n")
    assert proc.returncode == 0, proc.stderr
    assert "Hello!" in proc.stdout and "three business days" in proc.stdout
    assert "wire.txt" in proc.stdout


def test_ask_unknown_kb_is_a_one_line_error(env: dict[str, str], llm: ScriptedLLM) -> None:
    proc = _run(env, "ask", QUESTION, "--kb", "no-such-kb")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zhiwen: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert llm.requests == []


@pytest.mark.parametrize("question", ["", "   "])
def test_ask_an_empty_question_is_a_one_line_error(
    env: dict[str, str], llm: ScriptedLLM, question: str
) -> None:
    proc = _run(env, "ask", question, "--kb", KB)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "zhiwen: error: the question is empty", proc.stderr
    assert llm.requests == []


def test_ask_with_the_endpoint_down_is_a_one_line_error(env: dict[str, str], tmp_path: Path) -> None:
    down = {**env, "ZHIWEN_LLM_BASE_URL": "http://127.0.0.1:9/v1"}
    proc = _run(down, "ask", QUESTION, "--kb", KB)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("zhiwen: error: ") and "Traceback" not in proc.stderr, proc.stderr


def test_chat_goes_on_after_an_endpoint_error(env: dict[str, str], llm: ScriptedLLM) -> None:
    llm.enqueue(*(Script("never sent", status=500) for _ in range(3)), Script(ANSWER))  # a call + 2 retries
    proc = _run(env, "chat", "--kb", KB, stdin=f"{QUESTION}\n{QUESTION}\n")
    assert proc.returncode == 0, proc.stderr
    assert "error:" in proc.stdout and "chat model endpoint failed" in proc.stdout, proc.stdout
    assert proc.stdout.index("error:") < proc.stdout.index("three business days")  # the next turn answered
    assert "Traceback" not in proc.stdout + proc.stderr


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(env: dict[str, str], llm: ScriptedLLM) -> None:
    words = [f"w{i} " for i in range(60)]
    cancelled_before = llm.cancelled
    llm.enqueue(Script("".join(words), chunks=words, token_delay=0.2), Script(ANSWER))  # the first takes 12 s
    chat = subprocess.Popen(
        [sys.executable, "-m", "zhiwen.cli", "chat", "--kb", KB], env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert chat.stdin is not None and chat.stdout is not None
    try:
        chat.stdin.write(f"{QUESTION}\n")
        chat.stdin.flush()
        seen = ""
        while "w2" not in seen:  # the answer is being written
            char = chat.stdout.read(1)
            assert char, f"chat ended early: {seen!r} {chat.stderr.read() if chat.stderr else ''}"
            seen += char
        started = time.monotonic()
        chat.send_signal(signal.SIGINT)
        out, err = chat.communicate(f"{QUESTION}\n/quit\n", timeout=60)
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    assert "(stopped)" in out and "w59" not in seen + out, out
    assert "three business days" in out.split("(stopped)", 1)[1]  # the next question was answered
    assert time.monotonic() - started < 30
    assert llm.cancelled > cancelled_before  # the stopped answer's upstream request was cancelled
