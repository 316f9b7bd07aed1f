"""API keys, open probes, placeholder keys refused, per-key rate and concurrency limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import ValidationError

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

KEY_A, KEY_B = "key-aaaaaaaaaaaa", "key-bbbbbbbbbbbb"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(env: Env, kit: type[Kit]) -> Iterator[str]:
    settings = ServerSettings(api_keys=f"{KEY_A},{KEY_B}")
    with kit.serve(create_app(settings, start_model=False)) as url:
        yield url


@pytest.mark.parametrize(
    "headers",
    [{}, _auth("key-cccccccccccc"), _auth(KEY_A + "x"), _auth(KEY_A[:-1]), {"Authorization": KEY_A},
     {"Authorization": f"Basic {KEY_A}"}, {"Authorization": "Bearer"}, _auth(f"{KEY_A},{KEY_B}")],
    ids=["none", "wrong", "longer", "shorter", "no-scheme", "basic", "empty", "both-keys"],
)  # fmt: skip
def test_missing_or_wrong_key_is_401(
    keyed: str, kit: type[Kit], llm: ScriptedLLM, headers: dict[str, str]
) -> None:
    for method, path, body in [
        ("POST", "/v1/chat/completions", kit.chat_body()),
        ("GET", "/v1/models", None),
        ("GET", "/v1/kbs", None),
        ("POST", "/v1/threads", {}),
    ]:
        resp = httpx.request(method, keyed + path, json=body, headers=headers, timeout=30)
        error = kit.assert_error(resp, 401, "API key")
        assert error["type"] == "authentication_error"
        assert resp.headers["www-authenticate"] == "Bearer"
    assert llm.requests == []


@pytest.mark.parametrize("key", [KEY_A, KEY_B])
def test_right_key_is_accepted(keyed: str, kit: type[Kit], llm: ScriptedLLM, key: str) -> None:
    models = httpx.get(f"{keyed}/v1/models", headers=_auth(key), timeout=30)
    assert models.status_code == 200
    assert [m["id"] for m in models.json()["data"]] == [kit.KB]
    chat = httpx.post(f"{keyed}/v1/chat/completions", json=kit.chat_body(), headers=_auth(key), timeout=60)
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"].startswith(kit.ANSWER.rstrip("."))


def test_each_key_has_threads_of_its_own(keyed: str, kit: type[Kit], llm: ScriptedLLM) -> None:
    def chat(key: str, question: str) -> httpx.Response:
        body = kit.chat_body(question, thread_id="shared-name")
        return httpx.post(f"{keyed}/v1/chat/completions", json=body, headers=_auth(key), timeout=60)

    assert chat(KEY_A, kit.QUESTION).status_code == 200
    thread_b = httpx.get(f"{keyed}/v1/threads/shared-name", headers=_auth(KEY_B), timeout=30)
    kit.assert_error(thread_b, 404, "no thread")  # B cannot read A's conversation
    assert (
        httpx.delete(f"{keyed}/v1/threads/shared-name", headers=_auth(KEY_B), timeout=30).status_code == 404
    )
    llm.enqueue(kit.Script(kit.ANSWER_2))
    assert chat(KEY_B, kit.QUESTION_2).status_code == 200  # nor continue it: B starts its own

    def history(key: str) -> list[str]:
        resp = httpx.get(f"{keyed}/v1/threads/shared-name", headers=_auth(key), timeout=30)
        assert resp.status_code == 200, resp.text
        return [m["content"] for m in resp.json()["messages"] if m["role"] == "user"]

    assert history(KEY_A) == [kit.QUESTION]
    assert history(KEY_B) == [kit.QUESTION_2]


@pytest.mark.parametrize("path", ["/health", "/live", "/metrics", "/openapi.json"])
def test_probes_are_open(keyed: str, path: str) -> None:
    resp = httpx.get(keyed + path, timeout=30)
    assert resp.status_code == 200, resp.text
    if path == "/metrics":
        assert "zhiwen_requests" in resp.text
    elif path != "/openapi.json":
        assert resp.json()["status"] in ("ok", "alive")


def test_openapi_documents_bearer_auth(keyed: str) -> None:
    schema = httpx.get(f"{keyed}/openapi.json", timeout=30).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/chat/completions"]["post"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize(
    "keys", ["changeme", "secret", "sk-xxx", "short-key", f"{KEY_A},password", "test", f"{KEY_A}, xxx"]
)
def test_placeholder_keys_are_refused(keys: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        ServerSettings(api_keys=keys)


@pytest.mark.parametrize("value", ["on", "true", "jaeger"])
def test_an_unknown_tracing_mode_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="otel"):
        ServerSettings(otel=value)


def test_placeholder_keys_from_environment_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIWEN_API_KEYS", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        ServerSettings()


def test_refuses_to_start_without_keys_or_allow_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZHIWEN_API_KEYS", raising=False)
    monkeypatch.delenv("ZHIWEN_ALLOW_OPEN", raising=False)
    with pytest.raises(SystemExit, match="ZHIWEN_API_KEYS"):
        create_app(ServerSettings(), start_model=False)
    with pytest.raises(SystemExit):
        create_app(ServerSettings(allow_open=False, api_keys=""), start_model=False)


@pytest.mark.parametrize(("keys", "says"), [("", "set ZHIWEN_API_KEYS"), ("changeme", "ZHIWEN_API_KEYS: ")])
def test_serve_with_workers_refuses_bad_keys_in_one_line(tmp_path: Path, keys: str, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ZHIWEN_ALLOW_OPEN", "ZHIWEN_API_KEYS")}
    env |= {"ZHIWEN_API_KEYS": keys, "ZHIWEN_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", "serve", "--workers", "2", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("zhiwen: error: ") and says in line, line
    assert "zhiwen serve:" not in line, "no second prefix"


def test_rate_limit_per_key(env: Env, kit: type[Kit], llm: ScriptedLLM) -> None:
    settings = ServerSettings(api_keys=f"{KEY_A},{KEY_B}", rate_per_minute=3)
    with kit.serve(create_app(settings, start_model=False)) as url:
        statuses = [
            httpx.get(f"{url}/v1/models", headers=_auth(KEY_A), timeout=30).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        fourth = httpx.get(f"{url}/v1/models", headers=_auth(KEY_A), timeout=30)
        error = kit.assert_error(fourth, 429, "rate")
        assert error["type"] == "rate_limit_error"
        assert 1 <= int(fourth.headers["retry-after"]) <= 20  # one token comes back every 20 s
        # Probes are not counted; the other key has its own budget.
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers=_auth(KEY_B), timeout=30).status_code == 200
        refused = httpx.post(f"{url}/v1/chat/completions", json=kit.chat_body(), timeout=30)
        assert refused.status_code == 401
        # Refused before routing, and still counted under the route they asked for (they moved nothing).
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert 'zhiwen_requests_total{route="/v1/models",status="429"} 1.0' in metrics
        assert 'zhiwen_requests_total{route="chat",status="401"} 1.0' in metrics


def test_concurrency_limit_while_a_stream_is_open(env: Env, kit: type[Kit], llm: ScriptedLLM) -> None:
    settings = kit.open_settings(max_concurrent=1)
    words = [f"w{i} " for i in range(20)]
    llm.enqueue(kit.Script("".join(words), chunks=words, token_delay=0.1))
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        first_content = threading.Event()
        with c.stream("POST", "/v1/chat/completions", json=kit.chat_body(stream=True)) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    first_content.set()
                    second = c.get("/v1/models")
                    error = kit.assert_error(second, 429, "concurrency")
                    assert second.headers["retry-after"] == "1"
                    break
        assert first_content.is_set()
        # The slot is given back once the stream has ended (here: the client left).
        for _ in range(50):
            if c.get("/v1/models").status_code == 200:
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the concurrency slot was not released after the stream ended")
        assert error["type"] == "rate_limit_error"
