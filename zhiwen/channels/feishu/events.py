"""The decrypted callback bodies the bot reads (schema 2.0), checked field by field: every one is hostile.

Feishu's ids (message, chat, user) are checked against a plain ASCII pattern before they are used in a
URL path, a thread id or a log line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BadEvent", "CardAction", "Envelope", "Message", "envelope_of", "question_of"]

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_TEXT = 4000
"""Longest question the bot answers (a chat message; Feishu allows longer, a question is not)."""


class BadEvent(ValueError):
    """A body that is not a schema 2.0 event (or a URL verification) of the shape Feishu sends."""


def _str(obj: Any, key: str, required: bool = True) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadEvent(f"{key} missing or not a string")
    return value


def _id(obj: Any, key: str, required: bool = True) -> str:
    value = _str(obj, key, required)
    if value and not _ID.fullmatch(value):
        raise BadEvent(f"{key} is not an id")
    return value


@dataclass(frozen=True)
class Envelope:
    """``header`` of a v2 event: who it is for (``app_id``, ``token``), which (``event_id``), what (``event_type``)."""

    event_id: str
    event_type: str
    token: str
    app_id: str
    event: dict[str, Any] = field(repr=False)


def envelope_of(body: Any) -> Envelope:
    if not isinstance(body, dict) or body.get("schema") != "2.0" or not isinstance(body.get("header"), dict):
        raise BadEvent("not a schema 2.0 event")
    header, event = body["header"], body.get("event")
    if not isinstance(event, dict):
        raise BadEvent("event missing")
    return Envelope(_id(header, "event_id"), _str(header, "event_type")[:100], _str(header, "token"),
                    _str(header, "app_id", required=False), event)  # fmt: skip


@dataclass(frozen=True)
class Message:
    """An ``im.message.receive_v1`` message: ``chat_type`` is p2p (direct) or group."""

    message_id: str
    chat_id: str
    chat_type: str
    root_id: str
    sender_open_id: str
    sender_type: str
    message_type: str
    content: str = field(repr=False)
    mentions: tuple[tuple[str, str, str], ...] = ()
    """(placeholder key such as ``@_user_1``, open_id, display name) of each mention."""

    @classmethod
    def of(cls, event: dict[str, Any]) -> Message:
        message, sender = event.get("message"), event.get("sender")
        if not isinstance(message, dict) or not isinstance(sender, dict):
            raise BadEvent("message or sender missing")
        listed = message.get("mentions") or []
        if not isinstance(listed, list):
            raise BadEvent("message.mentions is not a list")
        mentions = []
        for m in listed:
            # An empty key would be "replaced" between every two characters of the text.
            if isinstance(m, dict) and isinstance(m.get("key"), str) and m["key"]:
                mentions.append(
                    (m["key"], _id(m.get("id"), "open_id", required=False), str(m.get("name", "")))
                )
        return cls(
            message_id=_id(message, "message_id"),
            chat_id=_id(message, "chat_id"),
            chat_type=_str(message, "chat_type"),
            root_id=_id(message, "root_id", required=False),
            sender_open_id=_id(sender.get("sender_id"), "open_id", required=False),
            sender_type=_str(sender, "sender_type", required=False),
            message_type=_str(message, "message_type"),
            content=_str(message, "content", required=False),
            mentions=tuple(mentions),
        )


_SURROGATES = re.compile(r"[\ud800-\udfff]")


def question_of(message: Message, bot_open_id: str) -> tuple[bool, str]:
    """(whether the bot is @-mentioned, the text with its mentions removed and other people's named).

    Only ``text`` messages are read; anything else is an empty question.
    """
    try:
        content = json.loads(message.content) if message.message_type == "text" else {}
    except (ValueError, RecursionError):
        content = {}
    text = content.get("text") if isinstance(content, dict) else None
    text = text if isinstance(text, str) else ""
    mentioned = False
    for key, open_id, name in sorted(message.mentions, key=lambda m: -len(m[0])):  # @_user_10 before @_user_1
        mine = bool(open_id) and open_id == bot_open_id
        mentioned = mentioned or mine
        text = text.replace(key, "" if mine else f"@{name}")
    # A lone surrogate (JSON's "\ud800") cannot be encoded for the model or the checkpointer: replaced, as a
    # character that cannot be read, instead of failing the turn.
    return mentioned, _SURROGATES.sub("\ufffd", " ".join(text.split()))


@dataclass(frozen=True)
class CardAction:
    """A ``card.action.trigger`` callback: a button pressed on a card the bot sent."""

    operator_open_id: str
    message_id: str
    chat_id: str
    value: dict[str, Any]

    @classmethod
    def of(cls, event: dict[str, Any]) -> CardAction:
        action, context = event.get("action"), event.get("context")
        value = action.get("value") if isinstance(action, dict) else None
        if not isinstance(value, dict):
            raise BadEvent("action.value missing")
        return cls(_id(event.get("operator"), "open_id"), _id(context, "open_message_id"),
                   _id(context, "open_chat_id", required=False), value)  # fmt: skip
