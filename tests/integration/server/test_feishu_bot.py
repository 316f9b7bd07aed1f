"""The Feishu bot on a real `zhiwen serve` app (uvicorn on 127.0.0.1, API keys on, scripted model), talking to a
fake Feishu Open API on loopback that records every call, with callbacks encrypted and signed as Feishu does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from feishu_fakes import (
    APP_ID,
    APP_SECRET,
    BOT_OPEN_ID,
    ENCRYPT_KEY,
    TOKEN,
    Call,
    FakeFeishu,
    buttons,
    card_action,
    card_of,
    card_texts,
    mention,
    message_event,
    post_event,
    signed_request,
)

from zhiwen.channels.feishu.dedup import EventLog
from zhiwen.memory.feedback import open_feedback_store
from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]

ADMIN = "admin-key-for-feishu-tests-0123456789"
EXPIRE = 4  # seconds a tenant token lives on the fake: the bot must refresh it before it dies


@pytest.fixture(scope="module")
def feishu(env: Env) -> Iterator[FakeFeishu]:
    with FakeFeishu(expire=EXPIRE) as fake:
        yield fake


@pytest.fixture(scope="module")
def url(env: Env, kit: type[Kit], feishu: FakeFeishu) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("APP_ID", APP_ID), ("APP_SECRET", APP_SECRET), ("VERIFICATION_TOKEN", TOKEN),
                            ("ENCRYPT_KEY", ENCRYPT_KEY), ("KB", kit.KB), ("BASE_URL", feishu.url)):  # fmt: skip
            mp.setenv(f"ZHIWEN_FEISHU_{name}", value)
        app = create_app(ServerSettings(api_keys=ADMIN, gc_freeze=False), start_model=False)
    with kit.serve(app) as base:
        yield base


@pytest.fixture
def fake(feishu: FakeFeishu) -> FakeFeishu:
    feishu.clear()
    return feishu


def _wait(what: str, done: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := done()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def _final(fake: FakeFeishu, card_id: str) -> Call:
    """The last update of ``card_id``, once it carries the rating buttons (the turn is over)."""

    def last() -> Call | None:
        updates = [c for c in fake.of("PATCH") if c.path.endswith(f"/{card_id}")]
        return updates[-1] if updates and buttons(card_of(updates[-1])) else None

    found: Call = _wait(f"the final card {card_id}", last)
    return found


def _ask(url: str, fake: FakeFeishu, event: dict[str, Any]) -> tuple[Call, Call]:
    """Post ``event``; the reply that created the card and the card's final update."""
    started = time.monotonic()
    resp = post_event(url, event)
    assert resp.status_code == 200 and resp.json() == {}, resp.text
    assert time.monotonic() - started < 2.0, "acknowledged at once, inside Feishu's 3 s"
    message_id = event["event"]["message"]["message_id"]
    replies = _wait("the reply", lambda: [c for c in fake.of("POST") if message_id in c.path and c.code == 0])
    assert len(replies) == 1 and replies[0].path.endswith("/reply")
    return replies[0], _final(fake, replies[0].answer["data"]["message_id"])


def test_the_challenge_is_answered_and_not_configured_is_404(url: str, kit: type[Kit], env: Env) -> None:
    challenge = {"challenge": "c-8f2b", "token": TOKEN, "type": "url_verification"}
    body, headers = signed_request(challenge, signed=False)
    resp = httpx.post(f"{url}/feishu/events", content=body, headers=headers, timeout=10)
    assert resp.status_code == 200 and resp.json() == {"challenge": "c-8f2b"}, "no API key needed"
    wrong = signed_request({**challenge, "token": "guessed"}, signed=False)
    kit.assert_error(httpx.post(f"{url}/feishu/events", content=wrong[0], headers=wrong[1]), 403, "token")
    assert httpx.get(f"{url}/v1/models").status_code == 401, "the rest of the API still needs a key"
    with kit.serve(create_app(ServerSettings(api_keys=ADMIN, gc_freeze=False), start_model=False)) as bare:
        kit.assert_error(
            httpx.post(f"{bare}/feishu/events", content=body, headers=headers), 404, "not configured"
        )


def test_forged_stale_and_malformed_callbacks_run_nothing(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    event = message_event(kit.QUESTION)
    body, headers = signed_request(event)
    forged = {**headers, "X-Lark-Signature": "f" * 64}
    kit.assert_error(httpx.post(f"{url}/feishu/events", content=body, headers=forged), 401, "signature")
    kit.assert_error(post_event(url, event, age=6 * 60), 401, "timestamp")
    kit.assert_error(post_event(url, event, key="not the encrypt key"), 401, "signature")
    kit.assert_error(post_event(url, event, signed=False), 401, "not signed")
    kit.assert_error(httpx.post(f"{url}/feishu/events", content=b"{", headers=headers), 400, "JSON")
    plain = httpx.post(f"{url}/feishu/events", json=event, timeout=10)
    kit.assert_error(plain, 400, "encrypt")
    huge = httpx.post(f"{url}/feishu/events", content=b"x" * 1_100_000, headers=headers, timeout=30)
    assert huge.status_code == 413
    # Unauthenticated nesting deeper than the JSON parser goes: a 400, not a 500 with a traceback.
    deep = httpx.post(f"{url}/feishu/events", content=b"[" * 900_000, headers=headers, timeout=30)
    kit.assert_error(deep, 400, "not JSON")
    bad_mentions = message_event(kit.QUESTION)
    bad_mentions["event"]["message"]["mentions"] = 5  # signed, but not the shape Feishu sends
    kit.assert_error(post_event(url, bad_mentions), 400, "mentions")
    time.sleep(1.0)
    assert fake.calls == [] and llm.requests == [], "nothing ran for a refused callback"


def test_a_question_is_answered_in_a_card_that_follows_the_stream(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER, chunk_size=3, token_delay=0.12))  # ~1.8 s of streaming
    event = message_event(kit.QUESTION)
    reply, final = _ask(url, fake, event)
    assert reply.body["reply_in_thread"] is False, "a direct chat: a plain reply"
    assert card_texts(card_of(reply))[0] == "正在查找资料…" or card_texts(card_of(reply))[0].startswith(
        "Looking"
    )
    card_id = final.path.rsplit("/", 1)[-1]
    updates = [c for c in fake.of("PATCH") if c.path.endswith(f"/{card_id}")]
    drafts = [card_texts(card_of(c)) for c in updates[:-1]]
    assert drafts and all(kit.ANSWER.startswith(d[0]) for d in drafts), drafts
    assert any(len(d[0]) < len(kit.ANSWER) for d in drafts), "a part of the answer was shown as it streamed"
    assert all("not yet checked" in d[-1] for d in drafts), "a draft says it is one"
    gaps = [b.at - a.at for a, b in itertools.pairwise(updates[:-1])]
    assert all(g >= 0.6 for g in gaps), f"updates throttled: {gaps}"
    shown = card_of(final)
    texts = card_texts(shown)
    assert texts[0].startswith(kit.ANSWER)
    assert any("gold-card.md" in t for t in texts), texts
    assert [b["value"]["rating"] for b in buttons(shown)] == ["up", "down"]
    assert llm.requests and kit.QUESTION in str(llm.requests[-1]["messages"][-1]["content"])
    assert all(c.token for c in fake.calls if not c.path.startswith("/open-apis/auth/")), (
        "every call authorised"
    )


def test_a_repeated_event_is_answered_once_even_after_a_restart(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit], env: Env
) -> None:
    event = message_event(kit.QUESTION_2)
    llm.enqueue(kit.Script(kit.ANSWER_2))
    _ask(url, fake, event)
    again = post_event(url, event)  # Feishu's retry: same event_id, a new timestamp, nonce and signature
    assert again.status_code == 200 and again.json() == {}
    time.sleep(1.5)
    assert len(fake.of("POST")) == 1 and len(llm.requests) == 1, "answered once"
    log = EventLog(env.home / "feishu.sqlite")
    try:
        assert not log.first_time(event["header"]["event_id"]), "another process sees it was taken"
        assert log.first_time("a-new-event-id")
    finally:
        log.close()


def test_in_a_group_only_an_at_mention_is_answered_in_its_thread(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    others = [mention("@_user_1", "ou_colleague", "Li Lei")]
    for text, mentions in ((kit.QUESTION, []), (f"@_user_1 {kit.QUESTION}", others)):
        assert post_event(url, message_event(text, "group", mentions, chat_id="oc_group1")).status_code == 200
    time.sleep(1.5)
    assert fake.of("POST") == [] and llm.requests == [], "not addressed to the bot: ignored"
    mentions = [mention("@_user_1", BOT_OPEN_ID, "zhiwen")]
    event = message_event(f"@_user_1 {kit.QUESTION}", "group", mentions, chat_id="oc_group1")
    reply, final = _ask(url, fake, event)
    assert reply.body["reply_in_thread"] is True
    asked = str(llm.requests[-1]["messages"][-1]["content"])
    assert kit.QUESTION in asked and "@_user_1" not in asked, "the mention is stripped"
    value = buttons(card_of(final))[0]["value"]
    assert value["thread"] == f"feishu/oc_group1/{event['event']['message']['message_id']}"


def test_a_card_button_is_stored_as_feedback_of_its_turn(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit], env: Env
) -> None:
    event = message_event(kit.QUESTION, chat_id="oc_dm_rater", sender="ou_rater")
    _, final = _ask(url, fake, event)
    card_id = final.path.rsplit("/", 1)[-1]
    down = buttons(card_of(final))[1]["value"]
    llm.enqueue(kit.Script(kit.ANSWER_2))
    _ask(url, fake, message_event(kit.QUESTION_2, chat_id="oc_dm_rater", sender="ou_rater"))  # a later turn

    store = open_feedback_store(get_settings())
    try:
        before = len(store.rated())
        stranger = post_event(url, card_action(down, card_id, "oc_dm_rater", operator="ou_stranger"))
        assert stranger.json()["toast"]["type"] == "error", "another person's direct chat"
        forged = post_event(
            url, card_action({**down, "checkpoint": "../x"}, card_id, "oc_dm_rater", "ou_rater")
        )
        assert forged.json()["toast"]["type"] == "error"
        resp = post_event(url, card_action(down, card_id, "oc_dm_rater", operator="ou_rater"))
        assert resp.status_code == 200 and resp.json()["toast"]["type"] == "success", resp.text
        rated = store.rated()
        assert len(rated) == before + 1
        item = rated[-1]
        assert item.rating == "down" and item.thread_id == "feishu/p2p/ou_rater" and item.kb == kit.KB
        assert item.question == kit.QUESTION and item.answer.startswith(kit.ANSWER), (
            "the rated turn, not the last"
        )
        assert any(s["source"] == "gold-card.md" for s in item.sources)
    finally:
        store.close()
    assert 'zhiwen_feedback_total{rating="down"}' in httpx.get(f"{url}/metrics").text


def test_the_tenant_token_is_refreshed_before_it_expires_and_after_a_refusal(
    url: str, fake: FakeFeishu, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    def issued() -> list[Call]:
        return [c for c in fake.calls if c.path.startswith("/open-apis/auth/")]

    _ask(url, fake, message_event(kit.QUESTION))
    first = {c.token for c in fake.of("PATCH")}
    time.sleep(EXPIRE + 0.5)  # every token the bot held has died on the fake
    _, final = _ask(url, fake, message_event(kit.QUESTION))
    assert final.token not in first and final.code == 0
    assert len(issued()) >= 1 and not [c for c in fake.calls if c.code == 99991663], "refreshed before expiry"

    fake.clear()
    fake.revoke()  # Feishu ends the token early (a reset App Secret): the next call is refused
    reply, final = _ask(url, fake, message_event(kit.QUESTION))
    refused = [c for c in fake.calls if c.code == 99991663]
    assert len(refused) == 1 and refused[0].path.endswith("/reply"), [(c.path, c.code) for c in fake.calls]
    assert len(issued()) == 1 and reply.token == issued()[0].answer["tenant_access_token"]
    assert reply.code == 0 and reply.token != refused[0].token, "fetched a new token and tried once more"
