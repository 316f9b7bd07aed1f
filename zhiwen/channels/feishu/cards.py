"""The interactive cards the bot sends: the answer as it streams, then with its sources and 👍/👎 buttons.

Every text is a ``plain_text`` element: an answer or a document may hold Feishu markup (``<at id=all>``,
links, colours) that a ``markdown`` element would act on. Cards say ``update_multi`` so they can be
replaced while the answer streams (Feishu updates only shared cards).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from zhiwen.server.public import public_source

__all__ = ["RATE", "TEXT", "card", "rate_value"]

RATE = "zhiwen.rate"
"""The ``kind`` of a 👍/👎 button's value."""
_MAX_ANSWER, _MAX_SOURCES, _MAX_TITLE = 6000, 8, 120

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "知问",
        "pending": "正在查找资料…",
        "sources": "来源",
        "draft": "回答生成中，尚未核对来源",
        "checked": "已与来源核对",
        "refused": "资料不足以回答",
        "failed": "暂时无法回答，请稍后再试。",
        "busy": "上一个问题还在回答中，请等它答完再问。",
        "too_long": "问题太长了，请精简后再问。",
        "thanks": "感谢反馈",
        "not_rated": "这条回答无法评价",
    },
    "en": {
        "title": "zhiwen",
        "pending": "Looking it up…",
        "sources": "Sources",
        "draft": "Draft, not yet checked against the sources",
        "checked": "Checked against the sources",
        "refused": "The documents do not support an answer",
        "failed": "Sorry, I cannot answer right now. Please try again later.",
        "busy": "Your previous question is still being answered; ask again when it is done.",
        "too_long": "The question is too long; please shorten it.",
        "thanks": "Thanks for the feedback",
        "not_rated": "This answer cannot be rated",
    },
}


def _text(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "plain_text", "content": content}}


def _source_lines(sources: Iterable[Mapping[str, Any]]) -> str:
    lines = []
    for i, s in enumerate(list(sources)[:_MAX_SOURCES], 1):
        name = public_source(str(s.get("source", "")))
        title = str(s.get("title") or s.get("heading") or "")[:_MAX_TITLE]
        lines.append(f"[{s.get('n', i)}] {name}" + (f" · {title}" if title and title != name else ""))
    return "\n".join(lines)


def rate_value(rating: str, thread: str, checkpoint: str) -> dict[str, str]:
    """What a 👍/👎 button sends back: which turn (thread and its checkpoint) it rates."""
    return {"kind": RATE, "rating": rating, "thread": thread, "checkpoint": checkpoint}


def card(language: str, text: str, note: str = "", sources: Iterable[Mapping[str, Any]] = (),
         rate: tuple[str, str] | None = None) -> str:  # fmt: skip
    """The card as the JSON text the messages API takes; ``rate`` (thread, checkpoint) adds the buttons."""
    words = TEXT.get(language, TEXT["en"])
    if len(text) > _MAX_ANSWER:
        text = text[:_MAX_ANSWER] + "…"
    elements: list[dict[str, Any]] = [_text(text or words["pending"])]
    listed = _source_lines(sources)
    if listed:
        elements += [{"tag": "hr"}, _text(f"{words['sources']}\n{listed}")]
    if note:
        elements.append({"tag": "note", "elements": [{"tag": "plain_text", "content": note}]})
    if rate is not None:
        buttons = [
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": label},
                "type": "default",
                "value": rate_value(rating, *rate),
            }
            for label, rating in (("👍", "up"), ("👎", "down"))
        ]
        elements.append({"tag": "action", "actions": buttons})
    body = {
        "config": {"wide_screen_mode": True, "update_multi": True},
        "header": {"title": {"tag": "plain_text", "content": words["title"]}, "template": "blue"},
        "elements": elements,
    }
    return json.dumps(body, ensure_ascii=False)
