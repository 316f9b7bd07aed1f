"""A server without keys refuses other sites' pages and DNS rebinding; no response names a server path.

Browsers are the attacker here: a page on another site can post to a server on 127.0.0.1 (its ``Origin``
shows it), and a site whose name resolves to 127.0.0.1 can read answers (its name is the ``Host``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

CHAT_SITE = "https://chat.example.com"


@pytest.fixture(scope="module")
def open_url(env: object, kit: Any) -> Iterator[str]:
    settings = ServerSettings(allow_open=True, cors_origins=CHAT_SITE, allowed_hosts="zhiwen.internal")
    with kit.serve(create_app(settings, start_model=False)) as url:
        yield url


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as c:
        return c.get(path, headers=headers)


def test_clients_without_an_origin_and_the_servers_own_page_pass(open_url: str) -> None:
    port = open_url.rsplit(":", 1)[1]
    assert _get(open_url, "/v1/models").status_code == 200, "curl, SDKs: no Origin"
    assert _get(open_url, "/v1/models", Origin=open_url).status_code == 200, "its own page"
    assert _get(open_url, "/v1/models", Host=f"localhost:{port}").status_code == 200
    assert _get(open_url, "/v1/models", Host="zhiwen.internal").status_code == 200, "ZHIWEN_ALLOWED_HOSTS"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another local service's page
        {"Host": "evil.example"},  # DNS rebinding: evil.example resolves to 127.0.0.1
        {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"},
    ],
)
@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/v1/kbs"])
def test_other_sites_and_rebound_names_are_refused(
    open_url: str, kit: Any, headers: dict[str, str], path: str
) -> None:
    kit.assert_error(_get(open_url, path, **headers), 403)


def test_a_post_from_another_site_does_not_reach_the_model(open_url: str, kit: Any, llm: Any) -> None:
    with httpx.Client(base_url=open_url, timeout=30) as c:
        resp = c.post("/v1/kbs", json={"name": "planted"}, headers={"Origin": "https://evil.example"})
        chat = c.post(
            "/v1/chat/completions", json=kit.chat_body(), headers={"Origin": "https://evil.example"}
        )
    kit.assert_error(resp, 403, "evil.example", "ZHIWEN_CORS_ORIGINS")
    kit.assert_error(chat, 403)
    assert llm.requests == [], "nothing reached the model"
    assert "planted" not in [k["name"] for k in _get(open_url, "/v1/kbs").json()["data"]]


def test_configured_cors_origins_get_cors_answers(open_url: str) -> None:
    allowed = _get(open_url, "/v1/models", Origin=CHAT_SITE)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == CHAT_SITE
    with httpx.Client(base_url=open_url, timeout=30) as c:
        preflight = c.options(
            "/v1/chat/completions",
            headers={
                "Origin": CHAT_SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == CHAT_SITE


def test_a_refused_preflight_says_why_in_json(open_url: str, kit: Any) -> None:
    """Starlette's own answer is the plain text "Disallowed CORS origin"; every other refusal is JSON."""
    with httpx.Client(base_url=open_url, timeout=30) as c:
        foreign = c.options("/v1/chat/completions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
        put = c.options("/v1/chat/completions", headers={
            "Origin": CHAT_SITE, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-secret"})  # fmt: skip
    kit.assert_error(foreign, 400, "https://evil.example", "ZHIWEN_CORS_ORIGINS")
    kit.assert_error(put, 400, "POST", "x-thread-id")
    assert "access-control-allow-origin" not in foreign.headers


def test_a_server_with_keys_does_not_check_origins(env: object, kit: Any) -> None:
    """With keys, a page cannot use the API without the key (browsers do not send it on their own)."""
    key = "origin-test-admin-key-9d2c"
    with kit.serve(create_app(ServerSettings(api_keys=key), start_model=False)) as url:
        resp = _get(url, "/v1/models", Origin="https://evil.example", Authorization=f"Bearer {key}")
    assert resp.status_code == 200, resp.text


def test_no_response_names_a_server_path(base_url: str, kit: Any, llm: Any) -> None:
    home = str(Path(os.environ["ZHIWEN_HOME"]))
    with httpx.Client(base_url=base_url, timeout=60) as c:
        chat = c.post("/v1/chat/completions", json=kit.chat_body(thread_id="paths"))
        search = c.post(f"/v1/kbs/{kit.KB}/search", json={"query": "gold card annual fee"})
        docs = c.get(f"/v1/kbs/{kit.KB}/documents")
        thread = c.get("/v1/threads/paths")
        health = c.get("/health")
    for resp in (chat, search, docs, thread, health):
        assert resp.status_code == 200, resp.text
        text = json.dumps(resp.json(), ensure_ascii=False)
        assert home not in text and "/tmp/" not in text, text[:500]
    assert chat.json()["sources"][0]["source"] == "gold-card.md"
    assert {d["source"] for d in docs.json()["data"]} == set(kit.DOCS)
    assert set(health.json()) == {"status", "version", "model"}, "no error text or log lines without a key"
