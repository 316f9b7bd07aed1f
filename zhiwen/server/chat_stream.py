"""Turn zhiwen turn events into OpenAI ``chat.completion(.chunk)`` bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["ChatFrames", "fill_usage", "finish_reason"]


def finish_reason(state: dict[str, Any]) -> str:
    """OpenAI's finish_reason for a turn: "length" when the answer given was cut at max_tokens."""
    quality = state.get("quality", {})
    return (
        "length" if quality.get("truncated") and quality.get("verdict") not in ("refuse", "quote") else "stop"
    )


class ChatFrames:
    """Builds the frames of one completion; ``extras`` (sources, quality, thread) go on the last one."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return body | extra

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }

    def completion(
        self, content: str, usage: dict[str, int], reasoning: str | None, finish: str = "stop", **extra: Any
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = reasoning
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        } | extra


def fill_usage(usage: dict[str, int]) -> dict[str, int]:
    """The turn's usage with its total. The endpoint's figures, or generate's estimate where the endpoint
    gives none (llama.cpp's stream); zero for a turn no model answered (a rule's refusal, a cached answer),
    which an estimate from the question and the reply had counted as tokens spent."""
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
