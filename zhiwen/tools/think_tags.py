"""Separate `<think>...</think>` reasoning from the answer, for whole texts and for token streams.

Tags are the exact, case-sensitive strings `<think>` and `</think>`. Only reasoning at the very start
counts; a tag later in the answer (say inside a ``` code block or inline code) is answer text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ThinkSplit", "ThinkStreamFilter", "split_reasoning_content", "strip_think"]

OPEN = "<think>"
CLOSE = "</think>"
FENCE = "```"

_State = Literal["start", "undecided", "think", "between", "answer"]


@dataclass(frozen=True)
class ThinkSplit:
    """An answer and the reasoning taken out of it (either may be empty)."""

    answer: str
    reasoning: str


def strip_think(text: str, expect_open_in_prompt: bool = False) -> ThinkSplit:
    """Split `text` into answer and reasoning.

    * Leading think blocks: if `text`, after optional leading whitespace, starts with `<think>`, the
      text up to the first `</think>` is reasoning. Further blocks separated only by whitespace are
      reasoning too; block contents are kept verbatim and joined with "\\n". The answer is what
      follows the last block, with leading whitespace removed. An unclosed block makes the rest of
      the text reasoning and the answer "". A `<think>` inside a block is plain reasoning text.
    * Bare `</think>` (DeepSeek-R1 templates put `<think>` in the prompt): without a leading
      `<think>`, the verbatim prefix before the first `</think>` is reasoning, unless a ``` fence or
      a `<think>` occurs in that prefix, in which case nothing is reasoning. After it, the rules
      above continue (more blocks may follow; the answer is left-stripped).
    * `expect_open_in_prompt=True` always treats the text as already inside a think block (a
      leading `<think>` echoed by the model is still accepted and dropped); with no `</think>` the
      whole text is reasoning.
    * Otherwise the text is the answer, unchanged, and the reasoning is "".
    """
    body = text.lstrip()
    if body.startswith(OPEN):
        rest = body[len(OPEN) :]
    elif expect_open_in_prompt:
        rest = text
    else:
        close = text.find(CLOSE)
        if close < 0 or OPEN in text[:close] or FENCE in text[:close]:
            return ThinkSplit(text, "")
        rest = text
    parts: list[str] = []
    while True:
        close = rest.find(CLOSE)
        if close < 0:
            parts.append(rest)
            return ThinkSplit("", "\n".join(parts))
        parts.append(rest[:close])
        rest = rest[close + len(CLOSE) :].lstrip()
        if not rest.startswith(OPEN):
            return ThinkSplit(rest, "\n".join(parts))
        rest = rest[len(OPEN) :]


class ThinkStreamFilter:
    """Incremental `strip_think`: `feed` chunks, then `finish` once; each call returns only new text.

    Text is held back only while it cannot be classified yet: leading whitespace and a partial
    `<think>` at the start or between blocks, a trailing partial `</think>` inside a block, and the
    "undecided" start described below. Once the answer has begun, every chunk passes straight
    through (nothing is held back), so tags later in the answer are never touched.

    Bare `</think>` policy (`expect_open_in_prompt=False`): a stream that does not start with
    `<think>` is held as undecided. It becomes reasoning if a `</think>` arrives that ends within the
    first `max_undecided` characters of the stream with no ``` fence or `<think>` before it. It
    becomes answer (emitted at once, verbatim) as soon as a fence or `<think>` shows up first, a
    `</think>` shows up too late, or `max_undecided` characters are held without a `</think>`. The
    default 0 never waits: a start other than `<think>` is answer immediately. Decisions depend on
    the text only, never on chunk boundaries; with `max_undecided` at least the stream length the
    concatenated output equals `strip_think(full_text, expect_open_in_prompt)`, and with any value
    it does so for texts without a bare `</think>`. With `expect_open_in_prompt=True` the stream
    starts inside a think block; if `</think>` never arrives, all of it is reasoning.
    """

    def __init__(self, expect_open_in_prompt: bool = False, max_undecided: int = 0) -> None:
        self._expect_open = expect_open_in_prompt
        self._max_undecided = max_undecided
        self._state: _State = "start"
        self._buf = ""
        self._answer: list[str] = []
        self._reasoning: list[str] = []

    def feed(self, chunk: str) -> ThinkSplit:
        """Consume `chunk`; return the answer and reasoning text that is now certain."""
        self._buf += chunk
        while self._step():
            pass
        return self._take()

    def finish(self) -> ThinkSplit:
        """End of stream: classify and return everything still held back. Call it once."""
        buf, self._buf = self._buf, ""
        if self._state == "think" or (self._state == "start" and self._expect_open):
            self._reasoning.append(buf)
        elif self._state == "between":
            self._answer.append(buf.lstrip())
        else:
            self._answer.append(buf)
        self._state = "answer"
        return self._take()

    def _take(self) -> ThinkSplit:
        out = ThinkSplit("".join(self._answer), "".join(self._reasoning))
        self._answer.clear()
        self._reasoning.clear()
        return out

    def _emit_answer(self, text: str) -> bool:
        self._answer.append(text)
        self._buf = ""
        self._state = "answer"
        return False

    def _step(self) -> bool:
        """Advance the state machine once; return True if another step may make progress."""
        buf = self._buf
        if self._state == "answer":
            return self._emit_answer(buf) if buf else False
        if self._state in ("start", "between"):
            body = buf.lstrip()
            if body.startswith(OPEN):
                if self._state == "between":
                    self._reasoning.append("\n")
                self._buf, self._state = body[len(OPEN) :], "think"
                return True
            if OPEN.startswith(body):
                return False  # only whitespace and a partial `<think>` so far
            if self._state == "between":
                return self._emit_answer(body)
            self._state = "think" if self._expect_open else "undecided"
            return True
        if self._state == "undecided":
            close = buf.find(CLOSE)
            prefix = buf if close < 0 else buf[:close]
            if OPEN in prefix or FENCE in prefix:
                return self._emit_answer(buf)
            if 0 <= close <= self._max_undecided - len(CLOSE):
                self._state = "think"
                return True
            if len(buf) >= self._max_undecided:  # also covers a `</think>` that ended too late
                return self._emit_answer(buf)
            return False
        close = buf.find(CLOSE)  # state "think"
        if close >= 0:
            self._reasoning.append(buf[:close])
            self._buf, self._state = buf[close + len(CLOSE) :], "between"
            return True
        keep = next((k for k in range(len(CLOSE) - 1, 0, -1) if buf.endswith(CLOSE[:k])), 0)
        self._reasoning.append(buf[: len(buf) - keep])
        self._buf = buf[len(buf) - keep :]
        return False


def split_reasoning_content(delta: Mapping[str, Any]) -> str:
    """Reasoning text that a server already separated out of a streamed chunk, or "".

    Reads `reasoning_content` (vLLM reasoning parsers, DeepSeek API) and then `reasoning` (some
    OpenAI-compatible servers), first from `delta` itself and then from a nested
    `additional_kwargs` mapping (a LangChain message chunk's fields). Non-string values count as none.
    """
    nested = delta.get("additional_kwargs")
    for source in (delta, nested if isinstance(nested, Mapping) else {}):
        for key in ("reasoning_content", "reasoning"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return ""
