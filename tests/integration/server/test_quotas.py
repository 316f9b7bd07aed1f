"""No key can fill the server: knowledge bases and threads are counted per key, against limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

A, B = "quota-admin-key-a-71f3", "quota-admin-key-b-0c9e"


@pytest.fixture(scope="module")
def url(env: object, kit: Any) -> Iterator[str]:
    settings = ServerSettings(api_keys=f"{A},{B}", max_kbs_per_key=2, max_threads_per_key=2)
    with kit.serve(create_app(settings, start_model=False)) as base:
        yield base


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_knowledge_bases_per_key(url: str, kit: Any) -> None:
    with client(url, A) as a, client(url, B) as b:
        assert a.post("/v1/kbs", json={"name": "qa-1"}).status_code == 201
        assert a.post("/v1/kbs", json={"name": "qa-2"}).status_code == 201
        error = kit.assert_error(a.post("/v1/kbs", json={"name": "qa-3"}), 429, "ZHIWEN_MAX_KBS_PER_KEY")
        assert error["code"] == "quota_exceeded"
        assert "qa-3" not in [k["name"] for k in a.get("/v1/kbs").json()["data"]]
        assert b.post("/v1/kbs", json={"name": "qb-1"}).status_code == 201, "another key counts its own"
        assert a.delete("/v1/kbs/qa-1").status_code == 204
        assert a.post("/v1/kbs", json={"name": "qa-3"}).status_code == 201, "a dropped base frees its place"


def test_threads_per_key(url: str, kit: Any, llm: Any) -> None:
    def chat(c: httpx.Client, thread: str) -> httpx.Response:
        return c.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread))

    with client(url, A) as a, client(url, B) as b:
        assert chat(a, "t1").status_code == 200
        assert a.post("/v1/threads").status_code == 201
        error = kit.assert_error(chat(a, "t3"), 429, "ZHIWEN_MAX_THREADS_PER_KEY")
        assert error["code"] == "quota_exceeded"
        kit.assert_error(a.post("/v1/threads"), 429, "threads")
        assert chat(a, "t1").status_code == 200, "a thread it has goes on"
        assert b.post("/v1/chat/completions", json=kit.chat_body()).status_code == 200, (
            "no thread: nothing counted"
        )
        assert chat(b, "t3").status_code == 200, "another key counts its own"
        assert a.delete("/v1/threads/t1").status_code == 204
        assert chat(a, "t3").status_code == 200, "a deleted thread frees its place"
