"""Ratings flow back: POST /v1/feedback on a real thread, then `zhiwen feedback export` and `zhiwen eval` on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.usefixtures("no_blocking_calls")]

ONE, TWO = "feedback-key-one-0123456789abcdef", "feedback-key-two-0123456789abcdef"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zhiwen.cli", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env=dict(os.environ), check=False)  # fmt: skip


def test_ratings_are_stored_with_their_turn_and_export_as_a_suite_that_runs(
    env: Env, llm: ScriptedLLM, kit: type[Kit], tmp_path: Path
) -> None:
    settings = ServerSettings(api_keys=f"{ONE},{TWO}", gc_freeze=False)
    with kit.serve(create_app(settings, start_model=False)) as url:
        one = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {ONE}"})
        two = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TWO}"})
        thread = one.post("/v1/threads", json={}).json()["id"]
        unanswered = one.post("/v1/feedback", json={"thread_id": thread, "rating": "down"})
        kit.assert_error(unanswered, 400, "no answer to rate yet")
        assert one.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread)).status_code == 200

        rated = one.post(
            "/v1/feedback",
            json={"thread_id": thread, "rating": "down", "comment": "300 yuan", "kb": kit.KB},
        )
        assert rated.status_code == 201, rated.text
        assert rated.json()["rating"] == "down" and rated.json()["id"]
        kit.assert_error(
            two.post("/v1/feedback", json={"thread_id": thread, "rating": "up"}), 404, "no thread"
        )
        kit.assert_error(
            one.post("/v1/feedback", json={"thread_id": "nope", "rating": "up"}), 404, "no thread"
        )
        kit.assert_error(one.post("/v1/feedback", json={"thread_id": thread, "rating": "meh"}), 400, "rating")
        kit.assert_error(
            one.post("/v1/feedback", json={"thread_id": thread, "rating": "up", "comment": "x" * 2001}), 400
        )
        assert 'zhiwen_feedback_total{rating="down"} 1.0' in httpx.get(f"{url}/metrics").text
        one.close()
        two.close()

    out = tmp_path / "regression"
    exported = _cli("feedback", "export", "--out", str(out), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "1 rated answer(s) written" in exported.stderr
    query = json.loads((out / "queries.jsonl").read_text(encoding="utf-8"))
    assert query["text"] == kit.QUESTION and query["rating"] == "down" and query["comment"] == "300 yuan"
    assert json.loads((out / "answers.jsonl").read_text(encoding="utf-8"))["answers"] == ["300 yuan"]
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any("300 yuan" in doc["text"] for doc in corpus), "the rated turn's sources travel with it"
    again = _cli("feedback", "export", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr, "an export never overwrites"

    ran = _cli("eval", str(out / "suite.yaml"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    record = json.loads((tmp_path / "run" / "records" / "hybrid.jsonl").read_text(encoding="utf-8"))
    assert record["question"] == kit.QUESTION and record["gold"] == ["300 yuan"]
    assert record["containment"] == 1.0 and record["recall@10"] == 1.0
