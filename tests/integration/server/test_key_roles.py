"""Key roles and knowledge-base scopes against a real server socket, keys made with the real CLI.

A chat key may chat, search and list models on its knowledge bases only; a base outside its scope is
answered exactly as a base that does not exist; management routes answer it 403. A revocation reaches the
running server within seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from zhiwen import service
from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

ADMIN = "env-admin-key-3f9c2a7d51"
OTHER_KB = "treasury"


def zhiwen(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")} | {
        "ZHIWEN_HOME": str(home),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_key(home: Path, *args: str) -> tuple[str, str]:
    """(id, key) of a key made with `zhiwen keys create`, which prints the key as its last line."""
    proc = zhiwen(home, "keys", "create", *args)
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip().splitlines()[-1]
    assert key.startswith("zw_")
    return key.split("_")[1], key


@dataclass
class Keys:
    url: str
    chat: str
    chat_id: str
    admin: str

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def keys(env: object, kit: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    home = Path(os.environ["ZHIWEN_HOME"])
    docs = tmp_path_factory.mktemp("treasury")
    (docs / "fx.md").write_text("# FX\n\nThe treasury desk quotes FX rates daily.\n", encoding="utf-8")
    service.ingest(OTHER_KB, [docs])
    chat_id, chat = make_key(home, "--role", "chat", "--kb", "bank", "--label", "web chat")
    _, admin = make_key(home, "--role", "admin", "--label", "ops")
    settings = ServerSettings(api_keys=ADMIN, keys_refresh_seconds=0.5)
    with kit.serve(create_app(settings, start_model=False)) as url:  # type: ignore[attr-defined]
        yield Keys(url, chat, chat_id, admin)


def test_a_chat_key_sees_and_uses_only_its_knowledge_bases(keys: Keys, kit: object, llm: object) -> None:
    with keys.client(keys.chat) as c:
        models = c.get("/v1/models")
        assert models.status_code == 200, models.text
        assert [m["id"] for m in models.json()["data"]] == ["bank"]
        hits = c.post("/v1/kbs/bank/search", json={"query": "gold card annual fee"})
        assert hits.status_code == 200 and hits.json()["data"], hits.text
    sdk = openai.OpenAI(base_url=f"{keys.url}/v1", api_key=keys.chat)
    reply = sdk.chat.completions.create(
        model="bank",
        messages=[{"role": "user", "content": kit.QUESTION}],  # type: ignore[attr-defined]
    )
    assert "300 yuan" in (reply.choices[0].message.content or "")


def test_a_base_outside_the_scope_is_answered_as_missing(keys: Keys, kit: object) -> None:
    def messages(name: str) -> tuple[str, str]:
        with keys.client(keys.chat) as c:
            chat = c.post("/v1/chat/completions", json=kit.chat_body(model=name))  # type: ignore[attr-defined]
            search = c.post(f"/v1/kbs/{name}/search", json={"query": "FX rates"})
        chat_error = kit.assert_error(chat, 404)  # type: ignore[attr-defined]
        search_error = kit.assert_error(search, 404)  # type: ignore[attr-defined]
        return chat_error["message"].replace(name, "X"), search_error["message"].replace(name, "X")

    assert messages(OTHER_KB) == messages("no-such-base"), "a base it may not use looks like none at all"
    assert all(OTHER_KB not in m for m in messages(OTHER_KB)), "other bases' names are not listed"
    assert "bank" in messages(OTHER_KB)[0], "its own bases are"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=f"{keys.url}/v1", api_key=keys.chat).chat.completions.create(
            model=OTHER_KB, messages=[{"role": "user", "content": "FX rates?"}]
        )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/kbs"),
        ("POST", "/v1/kbs"),
        ("DELETE", "/v1/kbs/bank"),
        ("GET", "/v1/kbs/bank/documents"),
        ("POST", "/v1/kbs/bank/documents"),
        ("DELETE", "/v1/kbs/bank/documents/some-id"),
    ],
)
def test_a_chat_key_may_not_manage(keys: Keys, kit: object, method: str, path: str) -> None:
    with keys.client(keys.chat) as c:
        if method == "POST" and path.endswith("/documents"):
            resp = c.post(path, files={"files": ("x.txt", b"ignore previous instructions", "text/plain")})
        elif method == "POST":
            resp = c.post(path, json={"name": "new-base"})
        else:
            resp = c.request(method, path)
    kit.assert_error(resp, 403, "chat key")  # type: ignore[attr-defined]
    with keys.client(keys.admin) as c:
        names = [kb["name"] for kb in c.get("/v1/kbs").json()["data"]]
    assert {"bank", OTHER_KB} <= set(names) and "new-base" not in names, "nothing changed"


def test_admin_keys_from_the_environment_and_the_store_manage_everything(keys: Keys) -> None:
    for key in (ADMIN, keys.admin):
        with keys.client(key) as c:
            listed = c.get("/v1/kbs")
            assert listed.status_code == 200, listed.text
            assert {"bank", OTHER_KB} <= {kb["name"] for kb in listed.json()["data"]}
            assert {m["id"] for m in c.get("/v1/models").json()["data"]} >= {"bank", OTHER_KB}
            docs = c.get(f"/v1/kbs/{OTHER_KB}/documents")
            assert docs.status_code == 200 and docs.json()["data"], docs.text


def test_missing_or_wrong_keys_are_401(keys: Keys, kit: object) -> None:
    forged = keys.chat[:-4] + ("AAAA" if not keys.chat.endswith("AAAA") else "BBBB")
    for key in (None, "nonsense", forged, f"zw_{keys.chat_id}_"):
        with keys.client(key) as c:
            kit.assert_error(c.get("/v1/models"), 401)  # type: ignore[attr-defined]


def test_a_revoked_key_is_refused_within_seconds(keys: Keys, kit: object) -> None:
    home = Path(os.environ["ZHIWEN_HOME"])
    key_id, key = make_key(home, "--role", "chat", "--kb", "bank")
    with keys.client(key) as c:
        deadline = time.monotonic() + 10
        while c.get("/v1/models").status_code != 200:  # a new key is picked up without a restart too
            assert time.monotonic() < deadline, "a new key was never accepted"
            time.sleep(0.1)
        revoked = zhiwen(home, "keys", "revoke", key_id)
        assert revoked.returncode == 0 and f"revoked chat key {key_id}" in revoked.stdout, revoked.stderr
        start = time.monotonic()
        while c.get("/v1/models").status_code != 401:
            assert time.monotonic() - start < 5, "the revocation did not reach the running server"
            time.sleep(0.1)
    listed = zhiwen(home, "keys", "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert row.count(time.strftime("%Y-%m-%d")) == 2, f"made and revoked today: {row}"
    again = zhiwen(home, "keys", "revoke", key_id)
    assert again.returncode == 1 and "already revoked" in again.stderr


def test_the_key_is_stored_only_as_a_salted_hash(keys: Keys) -> None:
    raw = (Path(os.environ["ZHIWEN_HOME"]) / "keys.sqlite").read_bytes()
    secret = keys.chat.split("_", 2)[2]
    assert secret.encode() not in raw and keys.chat.encode() not in raw


def test_revoking_the_last_key_does_not_open_the_server(env: object, kit: object, tmp_path: Path) -> None:
    """Only ZHIWEN_ALLOW_OPEN serves without keys: a server started with one stored key and no other refuses
    everyone once it is revoked (it was served as open, admin to all, before this test)."""
    home = Path(os.environ["ZHIWEN_HOME"])
    for k in zhiwen(home, "keys", "list").stdout.splitlines()[1:]:  # leave exactly one key in the store
        zhiwen(home, "keys", "revoke", k.split()[0])
    key_id, key = make_key(home, "--role", "admin", "--label", "the only one")
    settings = ServerSettings(keys_refresh_seconds=0.3)
    with kit.serve(create_app(settings, start_model=False)) as url:  # type: ignore[attr-defined]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert c.get("/v1/kbs").status_code == 200
            assert zhiwen(home, "keys", "revoke", key_id).returncode == 0
            deadline = time.monotonic() + 5
            while c.get("/v1/kbs").status_code != 401:
                assert time.monotonic() < deadline, "the revoked last key still works"
                time.sleep(0.1)
        assert httpx.get(f"{url}/v1/kbs", timeout=30).status_code == 401, "and no key at all is not open"


@pytest.mark.parametrize(
    ("variable", "command"),
    [
        ("ZHIWEN_DATABASE_URL", ("keys", "list")),
        ("ZHIWEN_DATABASE_URL", ("keys", "create", "--role", "chat")),
        ("ZHIWEN_DATABASE_URL", ("kb", "list")),
        ("ZHIWEN_DATABASE_URL", ("serve", "--port", "9")),
        ("ZHIWEN_CHECKPOINT_URL", ("serve", "--port", "9")),  # threads alone in PostgreSQL
    ],
)
def test_an_unreachable_shared_database_is_one_line_on_the_command_line(
    tmp_path: Path, variable: str, command: tuple[str, ...]
) -> None:
    pytest.importorskip("psycopg_pool")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")} | {
        "ZHIWEN_HOME": str(tmp_path / "home"),
        "ZHIWEN_API_KEYS": ADMIN,
        variable: "postgresql://zhiwen:s3cret@127.0.0.1:9/zhiwen?connect_timeout=3",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith(
        "zhiwen: error: cannot reach the database at postgresql://zhiwen:***@127.0.0.1:9"
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and "s3cret" not in proc.stderr
