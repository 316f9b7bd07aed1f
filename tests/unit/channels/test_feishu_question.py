"""The question read from a Feishu text message: mentions, and text a turn could not carry."""

from __future__ import annotations

import json

from zhiwen.channels.feishu.events import Message, question_of

BOT = "ou_bot"


def _message(text: str, mentions: tuple[tuple[str, str, str], ...] = ()) -> Message:
    return Message(message_id="om_1", chat_id="oc_1", chat_type="p2p", root_id="", sender_open_id="ou_user",
                   sender_type="user", message_type="text", content=json.dumps({"text": text}),
                   mentions=mentions)  # fmt: skip


def test_a_mention_with_an_empty_key_does_not_multiply_the_text() -> None:
    event = {"sender": {"sender_id": {"open_id": "ou_user"}, "sender_type": "user"},
             "message": {"message_id": "om_1", "chat_id": "oc_1", "chat_type": "p2p", "message_type": "text",
                         "content": json.dumps({"text": "fee?"}),
                         "mentions": [{"key": "", "id": {"open_id": "ou_x"}, "name": "a" * 1000}]}}  # fmt: skip
    message = Message.of(event)
    assert message.mentions == ()
    assert question_of(message, BOT) == (False, "fee?")


def test_a_lone_surrogate_is_replaced_not_carried_into_the_turn() -> None:
    _, text = question_of(_message("\ud800 fee?"), BOT)
    assert text == "\ufffd fee?"
    text.encode("utf-8")  # what the model client and the checkpointer do with it


def test_content_nested_deeper_than_the_parser_goes_is_an_empty_question() -> None:
    deep = Message(message_id="om_1", chat_id="oc_1", chat_type="p2p", root_id="", sender_open_id="ou_user",
                   sender_type="user", message_type="text", content="[" * 100_000)  # fmt: skip
    assert question_of(deep, BOT) == (False, "")
