"""Opening a callback: what is refused, with which status, and what a message and a card look like."""

from __future__ import annotations

import json
import time

import pytest
from feishu_fakes import (
    APP_ID,
    BOT_OPEN_ID,
    ENCRYPT_KEY,
    TOKEN,
    encrypt,
    envelope,
    mention,
    message_event,
    sign,
    signed_request,
)

from zhiwen.channels.feishu.callback import Challenge, Refused, open_callback
from zhiwen.channels.feishu.cards import card
from zhiwen.channels.feishu.events import Envelope, Message, question_of


def _open(body: bytes, headers: dict[str, str], now: float | None = None) -> Challenge | Envelope:
    lower = {k.lower(): v for k, v in headers.items()}
    return open_callback(body, lower, ENCRYPT_KEY, TOKEN, APP_ID, time.time() if now is None else now)


def _refused(
    status: int, body: bytes, headers: dict[str, str], fragment: str, now: float | None = None
) -> None:
    with pytest.raises(Refused) as caught:
        _open(body, headers, now)
    assert caught.value.status == status and fragment in str(caught.value)


def test_url_verification_is_answered_signed_or_not_and_needs_the_token() -> None:
    challenge = {"challenge": "ajls384kdjx98XX", "token": TOKEN, "type": "url_verification"}
    for signed in (True, False):
        assert _open(*signed_request(challenge, signed=signed)) == "ajls384kdjx98XX"
    _refused(403, *signed_request({**challenge, "token": "guess"}, signed=False), "verification token")
    _refused(403, *signed_request({k: v for k, v in challenge.items() if k != "token"}), "verification token")


def test_an_event_is_opened_only_when_signed_fresh_and_for_this_app() -> None:
    event = message_event("hello")
    opened = _open(*signed_request(event))
    assert isinstance(opened, Envelope) and opened.event_type == "im.message.receive_v1"
    assert opened.event_id == event["header"]["event_id"]

    body, headers = signed_request(event)
    _refused(401, body, {**headers, "X-Lark-Signature": "0" * 64}, "X-Lark-Signature")
    _refused(401, body + b" ", headers, "X-Lark-Signature")  # the body changed after signing
    _refused(401, *signed_request(event, key="another key"), "X-Lark-Signature")
    _refused(401, *signed_request(event, signed=False), "not signed")
    _refused(401, *signed_request(event, age=301), "timestamp")
    _refused(401, *signed_request(event, age=-301), "timestamp")  # from the future
    assert isinstance(_open(*signed_request(event, age=290)), Envelope), "inside the window"
    weird = str(int(time.time()))[:-1] + "٣"  # a digit, but not an ASCII one
    body, _ = signed_request(event)
    nonce = "n"
    headers = {"X-Lark-Request-Timestamp": weird, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": sign(weird, nonce, ENCRYPT_KEY, body)}  # fmt: skip
    _refused(401, body, headers, "timestamp")

    _refused(403, *signed_request(envelope("im.message.receive_v1", event["event"], token="guess")), "token")
    _refused(
        403, *signed_request(envelope("im.message.receive_v1", event["event"], app_id="cli_other")), "app"
    )


def test_malformed_bodies_are_400() -> None:
    _, headers = signed_request({})
    for raw in (b"not json", b"[]", b'{"schema": "2.0"}', b'{"encrypt": 5}'):
        _refused(400, raw, headers, "body")
    signed_junk = signed_request({"schema": "1.0"})
    _refused(400, *signed_junk, "not a Feishu event")
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, "not json")}).encode()
    ts, nonce = str(int(time.time())), "abc"
    sig = sign(ts, nonce, ENCRYPT_KEY, body)
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sig}
    _refused(400, body, headers, "decrypt")
    # Unsigned, a body that does not decrypt gets the same answer as one that does: no decryption oracle.
    _refused(401, body, {}, "not signed")
    garbage = json.dumps({"encrypt": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="}).encode()
    _refused(401, garbage, {}, "not signed")
    bad_id = message_event("hi", message_id="om_../../v3/auth")
    opened = _open(*signed_request(bad_id))
    assert isinstance(opened, Envelope)
    with pytest.raises(ValueError, match="message_id"):
        Message.of(opened.event)


def test_the_bots_mention_is_stripped_and_others_are_named() -> None:
    mentions = [mention("@_user_1", BOT_OPEN_ID, "zhiwen"), mention("@_user_2", "ou_x", "Li Lei")]
    for i in range(3, 12):
        mentions.append(mention(f"@_user_{i}", f"ou_{i}", f"P{i}"))
    event = message_event("@_user_1 年费多少？ cc @_user_2 @_user_11", "group", mentions)
    mentioned, text = question_of(Message.of(event["event"]), BOT_OPEN_ID)
    assert mentioned and text == "年费多少？ cc @Li Lei @P11"
    unmentioned, _ = question_of(Message.of(event["event"]), "ou_someone_else")
    assert not unmentioned
    image = message_event("x")
    image["event"]["message"]["message_type"] = "image"
    assert question_of(Message.of(image["event"]), BOT_OPEN_ID) == (False, "")


def test_cards_keep_hostile_text_plain() -> None:
    hostile = "<at id=all></at> [click](https://evil.example) **bold**"
    sources = [{"n": 1, "source": "/srv/zhiwen/kbs/x/uploads/年费.md", "title": "金卡"}]
    shown = json.loads(card("zh", hostile, "note", sources, ("feishu/oc_1/om_1", "ckpt-1")))
    assert shown["config"]["update_multi"] is True
    tags = {e["tag"] for e in shown["elements"]}
    assert "markdown" not in tags and "lark_md" not in json.dumps(shown)
    assert shown["elements"][0] == {"tag": "div", "text": {"tag": "plain_text", "content": hostile}}
    assert "[1] 年费.md · 金卡" in json.dumps(shown, ensure_ascii=False), "a file name, not the server's path"
    actions = next(e for e in shown["elements"] if e["tag"] == "action")["actions"]
    assert [a["value"]["rating"] for a in actions] == ["up", "down"]
    assert (
        actions[0]["value"]["thread"] == "feishu/oc_1/om_1" and actions[0]["value"]["checkpoint"] == "ckpt-1"
    )
