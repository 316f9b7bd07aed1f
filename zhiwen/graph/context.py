"""Per-run settings of the turn graph, read by nodes through ``Runtime[Context]`` (shown in Studio)."""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from zhiwen.graph.context_checks import BOUNDS, check_context_values
from zhiwen.memory.kb import DEFAULT_RRF_K, DEFAULT_WEIGHTS
from zhiwen.settings import DEFAULT_KB, get_settings


def _range(name: str) -> dict[str, float]:
    """A bounded field's bounds in its metadata, where pydantic reads them: Studio's context form (the
    published ``context_schema``) then shows and enforces the minimum and maximum ``__post_init__`` checks."""
    low, high = BOUNDS[name]
    return {"ge": low, "le": high}


__all__ = ["Context", "context_from_settings"]


@dataclass(kw_only=True)
class Context:
    """Everything one run may change; environment variables only supply endpoints and folders."""

    kb: str = field(default=DEFAULT_KB, metadata={"description": "Knowledge base to answer from."})
    model: str | None = field(
        default=None,
        metadata={
            "description": "Chat model name at the endpoint; default: ZHIWEN_LLM_MODEL or the embedded model."
        },
    )
    base_url: str | None = field(
        default=None,
        metadata={"description": "OpenAI-compatible endpoint for this run (overrides ZHIWEN_LLM_BASE_URL)."},
    )
    local_model: str | None = field(
        default=None,
        metadata={"description": "Embedded model when no endpoint is set: qwen2.5-0.5b or smollm2-135m."},
    )
    temperature: float = field(
        default=0.0, metadata={**_range("temperature"), "description": "Sampling temperature of the answer."}
    )
    max_tokens: int = field(
        default=320, metadata={**_range("max_tokens"), "description": "Most tokens an answer may have."}
    )
    request_timeout: float = field(
        default=120.0, metadata={**_range("request_timeout"), "description": "Seconds to wait for the model."}
    )
    stream_drafts: bool = field(
        default=True,
        metadata={
            "description": "Stream answer tokens as the model writes them (a draft the quality gate then "
            "withdraws is followed by a notice saying so). False: send the answer only once it is checked."
        },
    )
    persona: Literal["bank", "general"] = field(
        default="bank",
        metadata={
            "description": "Who the assistant says it is: bank (a bank's knowledge-base assistant) or general "
            "(any knowledge base; no bank in its prompts or refusals)."
        },
    )
    fence_instruction: bool = field(
        default=False,
        metadata={
            "description": "Also tell the model, in the system prompt, that the quoted sources are data and never "
            "instructions. Off by default: it cost the embedded small models answers (docs/evaluation.md); "
            "larger served models follow it. Sources are fenced structurally either way."
        },
    )
    top_k: int = field(
        default=2,
        metadata={
            **_range("top_k"),
            "description": "Chunks handed to the model as numbered context. 2 answers as well as 3 on the embedded "
            "model with 18% fewer prompt tokens, and 5 no better (benchmarks/prompt_budget.py); re-measure for a "
            "larger served model.",
        },
    )
    source_chars: int = field(
        default=400,
        metadata={
            **_range("source_chars"),
            "description": "Characters shown per chunk on average: twice this of the best-ranked chunk, half of it "
            "of each other one (best-matching sentences kept).",
        },
    )
    retrieval_mode: Literal["hybrid", "bm25", "dense"] = field(
        default="hybrid", metadata={"description": "Retrieval legs: hybrid (fused), bm25 or dense."}
    )
    bm25_weight: float = field(
        default=DEFAULT_WEIGHTS["bm25"],
        metadata={**_range("bm25_weight"), "description": "Weight of the BM25 leg in fusion."},
    )
    dense_weight: float = field(
        default=DEFAULT_WEIGHTS["dense"],
        metadata={**_range("dense_weight"), "description": "Weight of the dense leg in fusion."},
    )
    rrf_k: int = field(
        default=DEFAULT_RRF_K,
        metadata={**_range("rrf_k"), "description": "Reciprocal rank fusion constant k."},
    )
    fusion: Literal["rrf", "minmax", "zscore", "rrf_confidence", "minmax_confidence", "zscore_confidence"] = (
        field(
            default="minmax_confidence",
            metadata={
                "description": "How the two legs are fused: minmax_confidence (default: normalised scores, each leg "
                "weighted by how clearly its best hit stands out; chosen by leave-one-set-out evaluation), rrf "
                "(weighted reciprocal rank fusion with rrf_k), or the other forms of zhiwen.tools.fusion."
            },
        )
    )
    rerank: bool = field(
        default=True,
        metadata={
            "description": "Rerank the fused candidates with the cross-encoder endpoint when one is configured "
            "(ZHIWEN_RERANK_BASE_URL, or rerank_base_url); on any failure the fused order stands."
        },
    )
    rerank_candidates: int = field(
        default=30,
        metadata={
            **_range("rerank_candidates"),
            "description": "Fused candidates the reranker reorders before the top_k are kept.",
        },
    )
    rerank_base_url: str | None = field(
        default=None,
        metadata={"description": "Rerank endpoint for this run (overrides ZHIWEN_RERANK_BASE_URL)."},
    )
    language: Literal["auto", "zh", "en"] = field(
        default="auto", metadata={"description": "Answer language; auto follows the user."}
    )
    condense_with_llm: bool = field(
        default=True,
        metadata={"description": "Rewrite follow-ups into standalone questions with the LLM (else rules)."},
    )
    grounding_threshold: float = field(
        default=0.5,
        metadata={
            **_range("grounding_threshold"),
            "description": "Share of answer sentences that must be supported by sources.",
        },
    )
    quality_gate: bool = field(
        default=True, metadata={"description": "Check answers and retry or refuse when unsupported."}
    )
    anchor_check: bool = field(
        default=True,
        metadata={
            "description": "Refuse answers whose source does not state them next to the question's "
            "numbers and codes (its year, date, model), or whose figures stand only in source sentences "
            "about something else: catches answers taken from near-miss passages and sentences."
        },
    )
    quote_fallback: bool = field(
        default=True,
        metadata={
            "description": "When no drafted answer passes the gate, quote the source sentence that holds most of "
            "what was asked (verdict 'quote') instead of refusing; none close enough: refuse as before."
        },
    )
    source_relevance_threshold: float = field(
        default=0.0,
        metadata={
            **_range("source_relevance_threshold"),
            "description": "Refuse answers whose supporting sources hold less than this share of the "
            "question's topic terms (an answer taken from a passage about something else); 0 turns it off.",
        },
    )
    max_retries: int = field(
        default=1,
        metadata={**_range("max_retries"), "description": "Extra attempts after a failed quality check."},
    )
    llm_judge: bool = field(
        default=False, metadata={"description": "Also ask the LLM to judge groundedness (slower)."}
    )
    max_history_tokens: int = field(
        default=1200,
        metadata={
            **_range("max_history_tokens"),
            "description": "History kept for the model (older turns are trimmed).",
        },
    )
    answer_cache: bool = field(
        default=False,
        metadata={
            "description": "Answer a question asked before (same knowledge base generation, same settings) from "
            "the answer cache, and store answers the gate passed. On in zhiwen ask/chat/serve unless "
            "ZHIWEN_ANSWER_CACHE=off; off by default elsewhere, so evaluations measure the model."
        },
    )
    expect_think_open_in_prompt: bool = field(
        default=False,
        metadata={"description": "The model's template opens <think> in the prompt (DeepSeek-R1 style)."},
    )

    def __post_init__(self) -> None:
        """Every value checked against its field (``ContextError`` names each one that does not fit): a
        run's context comes from Studio, an SDK client or a parent graph, as they were given it."""
        check_context_values({f.name: getattr(self, f.name) for f in fields(self)}, _hints())


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Context)


def context_from_settings(**fields: Any) -> Context:
    """A ``Context`` for ``zhiwen ask/chat/serve``: the process settings (``ZHIWEN_PERSONA``,
    ``ZHIWEN_LLM_THINK_OPEN_IN_PROMPT``, ``ZHIWEN_FENCE_INSTRUCTION``, ``ZHIWEN_ANSWER_CACHE``, ``ZHIWEN_LLM_TIMEOUT``) fill what ``fields`` leave unset."""
    settings = get_settings()
    fields.setdefault("persona", settings.persona)
    fields.setdefault("fence_instruction", settings.fence_instruction)
    fields.setdefault("expect_think_open_in_prompt", settings.llm_think_open_in_prompt)
    fields.setdefault("answer_cache", settings.answer_cache != "off")
    fields.setdefault("request_timeout", settings.llm_timeout)
    return Context(**fields)
