"""Replicas that share a PostgreSQL database agree: one turn per thread, one rate and concurrency limit.

Two (or three) ``zhiwen serve`` apps on real sockets, one of them a separate process killed with SIGKILL, a real
PostgreSQL cluster that a test stops and starts again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from zhiwen.server import coordination
from zhiwen.server.app import create_app
from zhiwen.server.coordination import PostgresCoordinator
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit, PostgresCluster

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]

SLOW = [f"w{i} " for i in range(40)]


@pytest.fixture
def shared_db(env: Env, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ZHIWEN_DATABASE_URL set, the shared limits emptied (each test starts with full buckets)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("zhiwen_rate", "zhiwen_in_flight"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    monkeypatch.setenv("ZHIWEN_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    yield postgres_url
    get_settings.cache_clear()


def _stream_until_content(client: httpx.Client, body: dict[str, object], reached: threading.Event) -> int:
    """Stream a chat, set ``reached`` at its first content, read it to the end; the status code."""
    with client.stream("POST", "/v1/chat/completions", json=body) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                reached.set()
        return stream.status_code


def test_a_thread_busy_on_one_replica_is_busy_on_the_other(
    shared_db: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    settings = kit.open_settings(gc_freeze=False)
    with (
        kit.serve(create_app(settings, start_model=False)) as one,
        kit.serve(create_app(settings, start_model=False)) as two,
        httpx.Client(base_url=one, timeout=60) as a,
        httpx.Client(base_url=two, timeout=60) as b,
    ):
        thread = a.post("/v1/threads", json={}).json()["id"]
        llm.enqueue(kit.Script("".join(SLOW), chunks=SLOW, token_delay=0.05))
        reached = threading.Event()
        status: list[int] = []
        first = threading.Thread(
            target=lambda: status.append(
                _stream_until_content(a, kit.chat_body(thread_id=thread, stream=True), reached)
            )
        )
        first.start()
        assert reached.wait(30), "the first turn never streamed"
        busy = b.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread))
        error = kit.assert_error(busy, 409, "has a turn running")
        assert error["code"] == "thread_busy"
        first.join(60)
        assert status == [200]

        llm.enqueue(kit.Script(kit.ANSWER_2))
        deadline = time.monotonic() + 10
        while (
            after := b.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread))
        ).status_code == 409:
            assert time.monotonic() < deadline, "the lease was not released when the first turn ended"
            time.sleep(0.1)  # fmt: skip
        assert after.status_code == 200, after.text
        messages = a.get(f"/v1/threads/{thread}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"], "no message lost"


def test_a_rate_limit_holds_for_both_replicas_together(shared_db: str, kit: type[Kit]) -> None:
    settings = kit.open_settings(gc_freeze=False, rate_per_minute=4)
    with (
        kit.serve(create_app(settings, start_model=False)) as one,
        kit.serve(create_app(settings, start_model=False)) as two,
    ):
        codes = [httpx.get(f"{(one, two)[i % 2]}/v1/models", timeout=30).status_code for i in range(6)]
        assert codes == [200, 200, 200, 200, 429, 429], "4 a minute in all, not 4 on each replica"
        again = httpx.get(f"{two}/v1/models", timeout=30)
        kit.assert_error(again, 429, "rate")
        assert 1 <= int(again.headers["retry-after"]) <= 15


def test_a_concurrency_limit_holds_for_both_replicas_together(
    shared_db: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    settings = kit.open_settings(gc_freeze=False, max_concurrent=1)
    llm.enqueue(kit.Script("".join(SLOW), chunks=SLOW, token_delay=0.05))
    with (
        kit.serve(create_app(settings, start_model=False)) as one,
        kit.serve(create_app(settings, start_model=False)) as two,
        httpx.Client(base_url=one, timeout=60) as a,
    ):
        reached = threading.Event()
        first = threading.Thread(target=_stream_until_content, args=(a, kit.chat_body(stream=True), reached))
        first.start()
        assert reached.wait(30)
        kit.assert_error(httpx.get(f"{two}/v1/models", timeout=30), 429, "concurrency")
        first.join(60)
        assert httpx.get(f"{two}/v1/models", timeout=30).status_code == 200, "the slot came back"


def test_a_database_restart_is_ready_503_then_recovers_and_the_thread_goes_on(
    shared_db: str, postgres: PostgresCluster, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    settings = kit.open_settings(gc_freeze=False)
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        assert c.get("/ready").json()["shared"] == "shared database answers"
        thread = c.post("/v1/threads", json={}).json()["id"]
        assert c.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread)).status_code == 200
        postgres.stop()
        try:
            down = c.get("/ready")
            assert down.status_code == 503 and "unreachable" in down.json()["shared"]
            assert "127.0.0.1" not in down.text, "no connection details on an open route"
            refused = c.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread))
            error = kit.assert_error(refused, 503, "shared database is unreachable")
            assert refused.headers["retry-after"] == "5" and error["code"] == "store_unavailable"
            # The knowledge base's catalog is in the database too: its routes say the same, never 500.
            for lost in (c.post(f"/v1/kbs/{kit.KB}/search", json={"query": kit.QUESTION}),
                         c.get(f"/v1/kbs/{kit.KB}/documents")):  # fmt: skip
                assert (
                    kit.assert_error(lost, 503, "shared database is unreachable")["code"]
                    == "store_unavailable"
                )
        finally:
            postgres.start()
        deadline = time.monotonic() + 30
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "/ready did not recover after the database came back"
            time.sleep(0.2)
        llm.enqueue(kit.Script(kit.ANSWER_2))
        again = c.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread))
        assert again.status_code == 200, again.text
        roles = [m["role"] for m in c.get(f"/v1/threads/{thread}").json()["messages"]]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert c.post(f"/v1/kbs/{kit.KB}/search", json={"query": kit.QUESTION}).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_replica_killed_mid_turn_frees_the_thread_at_once(
    shared_db: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    port = _free_port()
    child_env = {**os.environ, "ZHIWEN_ALLOW_OPEN": "true", "ZHIWEN_GC_FREEZE": "false"}
    replica = subprocess.Popen([sys.executable, "-m", "zhiwen.cli", "serve", "--port", str(port)], env=child_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        kit.wait_for_http(f"{url}/live", replica, "the replica process")
        thread = "killed-mid-turn"
        llm.enqueue(kit.Script("".join(SLOW * 5), chunks=SLOW * 5, token_delay=0.05))
        with (
            httpx.Client(base_url=url, timeout=60) as a,
            a.stream("POST", "/v1/chat/completions", json=kit.chat_body(thread_id=thread, stream=True)) as s,
        ):
            for line in s.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    replica.send_signal(signal.SIGKILL)
                    replica.wait(10)
                    break
        settings = kit.open_settings(gc_freeze=False)
        with kit.serve(create_app(settings, start_model=False)) as two:
            llm.enqueue(kit.Script(kit.ANSWER_2))
            after = httpx.post(f"{two}/v1/chat/completions", json=kit.chat_body(thread_id=thread), timeout=60)
            assert after.status_code == 200, after.text  # not 409: the dead replica's lock went with it
    finally:
        if replica.poll() is None:
            replica.kill()
        replica.wait(10)


def test_a_dead_replicas_request_slots_expire(
    shared_db: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coordination, "LEASE_SECONDS", 1.0)

    async def run() -> None:
        dead = PostgresCoordinator(postgres_url, rate_per_minute=100, max_concurrent=1)
        alive = PostgresCoordinator(postgres_url, rate_per_minute=100, max_concurrent=1)
        await dead.open()
        await alive.open()
        try:
            wait, slot = await dead.take("k")
            assert wait == 0 and slot
            assert (await alive.take("k"))[0] > 0, "the slot is taken"
            await dead.close()  # dies without releasing: no renewal from here on
            deadline = time.monotonic() + 10
            while (await alive.take("k"))[0] > 0:
                assert time.monotonic() < deadline, "a dead replica's slot never expired"
                await asyncio.sleep(0.2)
        finally:
            await alive.close()

    asyncio.run(run())


def test_a_keys_thread_quota_counts_on_both_replicas_together(shared_db: str, kit: type[Kit]) -> None:
    with psycopg.connect(shared_db, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS zhiwen_owned")
    settings = kit.open_settings(gc_freeze=False, max_threads_per_key=2)
    with (
        kit.serve(create_app(settings, start_model=False)) as one,
        kit.serve(create_app(settings, start_model=False)) as two,
    ):
        assert httpx.post(f"{one}/v1/threads", json={}, timeout=30).status_code in (200, 201)
        assert httpx.post(f"{two}/v1/threads", json={}, timeout=30).status_code in (200, 201)
        third = httpx.post(f"{one}/v1/threads", json={}, timeout=30)
        error = kit.assert_error(third, 429, "ZHIWEN_MAX_THREADS_PER_KEY")
        assert error["code"] == "quota_exceeded"
    assert not (get_settings().home / "quotas.sqlite").exists(), "counted in the database, not on a replica"
