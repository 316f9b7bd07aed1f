"""The turn graph's state: what callers send (InputState), what they get back (OutputState)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

__all__ = [
    "InputState",
    "Intent",
    "OutputState",
    "Quality",
    "Source",
    "State",
    "answer_extras",
    "answer_message",
    "merge_timings",
]


def merge_timings(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    """Reducer: stage timings add up over retries; a ``__reset__`` key starts a new turn's timings."""
    right = right or {}
    out = {} if "__reset__" in right else dict(left or {})
    for key, value in right.items():
        if key != "__reset__":
            out[key] = out.get(key, 0.0) + value
    return out


class Intent(TypedDict):
    """label: greeting | chitchat | question | followup | out_of_scope | unsafe | empty."""

    label: str
    language: str
    query: str
    reason: str
    method: str


class Source(TypedDict):
    """One numbered context chunk: [n] in the answer refers to ``n``."""

    n: int
    id: str
    doc_id: str
    text: str
    score: float
    source: str
    title: str
    metadata: dict[str, Any]


class Quality(TypedDict, total=False):
    verdict: str
    grounded: float
    relevance: float
    source_relevance: float | None
    citations_valid: bool
    language_ok: bool
    anchored: bool | None
    figures_on_topic: bool | None
    """The answer's own figures stand in a source sentence about what was asked (None: it has none)."""
    think_leak: bool
    model_refused: bool
    truncated: bool
    attempts: int
    reasons: list[str]
    sentences: list[dict[str, Any]]
    unsafe_dropped: list[dict[str, str]]
    """Sentences the bank's answer rules took out (a credential request, a link not on the allow-list)."""
    policy: list[str]
    """What the bank persona's answer policy did to a passed answer (numbered steps, a risk reminder...)."""
    policy_appendix: str
    """The fixed text the policy added at the end (a risk reminder): shown after a streamed draft."""
    cached: bool
    """The answer came from the answer cache: the gate passed it when it was first given."""
    quote: dict[str, Any]
    """Verdict ``quote``: no draft passed, so the answer quotes this source sentence (``source``: its [n];
    ``coverage``: the share of the question's topic terms it holds)."""


class InputState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class OutputState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    answer: str
    sources: list[Source]
    quality: Quality
    reasoning: str
    intent: Intent


class State(OutputState, total=False):
    """Working state of one turn; the private keys are reset by ``track_intent`` at each turn."""

    draft: str
    draft_finish: str
    """Why the model stopped writing the draft, as the endpoint said: "stop", "length" (max_tokens)..."""
    model_reasoning: str
    attempt: int
    strategy: str
    cache_key: str
    """The answer cache's key of this turn's question ("" when not caching): ``evaluate`` stores under it."""
    timings: Annotated[dict[str, float], merge_timings]


_EXTRAS = "zhiwen"  # the key of an answer's sources and verdict in its message's response_metadata
_SHOWN_QUALITY = ("verdict", "grounded", "relevance", "attempts", "reasons", "cached")
_SHOWN_SOURCE = ("n", "doc_id", "text", "source", "title")


def answer_message(
    answer: str, sources: Sequence[Mapping[str, Any]], quality: Mapping[str, Any]
) -> AIMessage:
    """The turn's answer as the conversation keeps it: with the sources its [n] refer to and its verdict.

    The state's ``sources`` and ``quality`` are the last turn's only, so a conversation opened again could
    link the citations of its last answer alone. Kept in ``response_metadata``, which no model is sent
    (the history the nodes build copies the text only); the page number is the one metadata field kept."""
    kept_sources = [
        {key: s[key] for key in _SHOWN_SOURCE if key in s}
        | ({"metadata": {"page": s["metadata"]["page"]}} if "page" in s.get("metadata", {}) else {})
        for s in sources
    ]
    kept_quality = {key: quality[key] for key in _SHOWN_QUALITY if key in quality}
    return AIMessage(
        content=answer, response_metadata={_EXTRAS: {"sources": kept_sources, "quality": kept_quality}}
    )


def answer_extras(message: BaseMessage) -> dict[str, Any]:
    """The sources and verdict ``answer_message`` kept on an answer (empty for any other message)."""
    extras = message.response_metadata.get(_EXTRAS) if isinstance(message, AIMessage) else None
    return extras if isinstance(extras, dict) else {}
