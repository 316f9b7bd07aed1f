"""Request and response bodies (OpenAI chat-completions shapes, plus zhiwen's knowledge-base API)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from zhiwen.memory.kb import DEFAULT_FUSION, DEFAULT_RRF_K, DEFAULT_WEIGHTS

__all__ = [
    "MAX_QUERY_CHARS",
    "ChatMessageIn",
    "ChatRequest",
    "KnowledgeBaseIn",
    "SearchRequest",
    "StreamOptions",
    "TextPart",
    "ThreadIn",
    "ThreadUpdate",
]


MAX_QUERY_CHARS = 4000
"""The longest search query or MCP question: embedding and BM25 time grow with it (126,000 characters took a
minute of dense search)."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _unicode(text: str) -> str:
    # JSON may escape a lone surrogate ("\ud800"); pydantic lets it through a plain str (a constrained one
    # refuses it), and it would fail the turn at its first encode, as an upstream error.
    if _SURROGATE.search(text):
        raise PydanticCustomError(
            "string_unicode", "not valid Unicode: it holds a lone surrogate (\\ud800-\\udfff)"
        )
    return text


Text = Annotated[str, AfterValidator(_unicode)]
"""A string that a turn carries to the model, the embedder and the checkpointer: valid Unicode."""


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: Text


class ChatMessageIn(BaseModel):
    """One message; content is a string or a list of text parts (images are not supported)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat-completions request; unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=256, description="A knowledge base name from GET /v1/models.")
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = Field(default=None, max_length=256)
    thread_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
        description="zhiwen extension: continue a stored conversation (only the last user message is new).",
    )  # fmt: skip
    stream_drafts: bool | None = Field(
        default=None,
        description="zhiwen extension: false sends the answer only after the quality gate has checked it "
        "(no draft that is then refused is ever shown); default ZHIWEN_STREAM_DRAFTS (true).",
    )
    include_reasoning: bool = Field(
        default=False, description="zhiwen extension: stream reasoning_content deltas."
    )


NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
"""No control character: PostgreSQL refuses a NUL (a thread's title was a 500, its thread left claimed
and unlisted to its client), and a title or an id is one line."""


class ThreadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kb: str | None = Field(default=None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)
    title: str | None = Field(
        default=None, max_length=200, pattern=NO_CONTROLS, description="Shown in GET /v1/threads."
    )


class ThreadUpdate(BaseModel):
    """A rename: ``POST /v1/threads/{id}`` (OpenAI's "modify thread" route)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(
        min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
    )


class KnowledgeBaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^/\\\x00]+$")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(default=10, ge=1, le=200)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    bm25_weight: float = Field(default=DEFAULT_WEIGHTS["bm25"], ge=0, le=100)
    dense_weight: float = Field(default=DEFAULT_WEIGHTS["dense"], ge=0, le=100)
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=1, le=10_000)
    fusion: Literal["rrf", "minmax", "zscore", "rrf_confidence", "minmax_confidence", "zscore_confidence"] = (
        DEFAULT_FUSION  # type: ignore[assignment]
    )


def model_card(kb: str, documents: int) -> dict[str, Any]:
    return {"id": kb, "object": "model", "created": 0, "owned_by": "zhiwen", "documents": documents}


class FeedbackIn(BaseModel):
    """A rating of a thread's latest answer (what a 👍/👎 button under it sends)."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=2000, description="What was wrong, or the right answer.")
    kb: str = Field(default="", max_length=128, description="The knowledge base (model) the thread asked.")
