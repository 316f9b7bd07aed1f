"""Process-wide settings from the environment (``ZHIWEN_*``); per-run settings live in ``Context``."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_KB", "Settings", "get_settings", "redact_url"]

# The knowledge base every surface uses when none is named: `zhiwen ingest/search/kb/ask/chat`, the server's
# models `zhiwen` and `default` (ZHIWEN_DEFAULT_KB changes that one), and the graph's `Context.kb`.
DEFAULT_KB = "default"


# Query parameters that carry a secret in the URLs zhiwen is given (libpq's password/sslpassword, tokens).
_SECRET_PARAMS = r"password|passwd|pwd|sslpassword|token|access_token|api_key|apikey|api-key|secret|key"


def redact_url(url: str) -> str:
    """``url`` fit for a message or a log line: a password in it (``user:password@`` or a query parameter
    such as libpq's ``password=``) is replaced by ``***``."""
    url = re.sub(r"(?<=://)([^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(rf"(?i)([?&](?:{_SECRET_PARAMS})=)[^&#]*", r"\1***", url)


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries ``user:password@`` (or a user alone) before its host."""
    return re.match(r"^[a-z][a-z0-9+.-]*://[^/?#@]*@", url, re.IGNORECASE) is not None


def _no_credentials(url: str | None, info: ValidationInfo) -> str | None:
    """Refuse ``user:password@`` in a model endpoint's URL: the clients send the API key as a bearer token,
    and the embedded HTTP client refuses to send both (a traceback mid-turn before this check)."""
    if url and has_credentials(url):
        name = f"ZHIWEN_{str(info.field_name).upper().removesuffix('_BASE_URL')}_API_KEY"
        raise ValueError(f"put no user or password in the URL; give the credential as {name}")
    return url


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "zhiwen"


class Settings(BaseSettings):
    """Where data lives and which model endpoints to use.

    Leave ``llm_base_url`` unset to have zhiwen start its embedded local model server, and
    ``embeddings_base_url`` unset to embed in-process with multilingual-e5-small.
    """

    # hide_input_in_errors: a refused URL may hold a password; the CLI shows errors()' input redacted.
    model_config = SettingsConfigDict(
        env_prefix="ZHIWEN_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(
        default_factory=_default_home, description="Data folder (knowledge bases, caches, logs)."
    )
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL, e.g. vLLM's /v1.")
    llm_model: str | None = Field(default=None, description="Model name to request from llm_base_url.")
    llm_api_key: str = Field(default="EMPTY", description="API key for llm_base_url.")
    llm_timeout: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Seconds `zhiwen ask/chat/serve` wait for the model to connect or to send its next bytes; "
        "a request that times out is tried twice more, so a model that never answers costs three times this.",
    )
    local_model: str = Field(default="qwen2.5-0.5b", description="Embedded model used when no URL is set.")
    llm_threads: int = Field(default=2, ge=1, description="CPU threads for the embedded model server.")
    llm_ctx: int = Field(default=4096, ge=512, description="Context window of the embedded model server.")
    persona: Literal["bank", "general"] = Field(
        default="bank",
        description="Who the assistant says it is in `zhiwen ask/chat/serve`: bank, or general (no bank named).",
    )
    fence_instruction: bool = Field(
        default=False,
        description="`zhiwen ask/chat/serve` tell the model that quoted sources are data, never instructions "
        "(Context.fence_instruction; off by default: it cost the embedded small models answers).",
    )
    llm_think_open_in_prompt: bool = Field(
        default=False,
        description="The endpoint's chat template opens <think> in the prompt (DeepSeek-R1 style served "
        "without a reasoning parser), so the reply's reasoning arrives without its opening tag.",
    )
    database_url: str | None = Field(
        default=None,
        pattern=r"^postgres(ql)?://",
        description="PostgreSQL shared by every replica: knowledge-base catalogs and write locks, ingest jobs, "
        "API keys, limits and locks live there (threads too, unless ZHIWEN_CHECKPOINT_URL names another).",
    )
    milvus_uri: str | None = Field(
        default=None,
        pattern=r"^((https?|tcp)://.+|[^:]+\.db)$",
        description="Keep new knowledge bases' BM25 and dense legs in Milvus: a path ending in .db (embedded "
        "Milvus Lite) or the URL of a Milvus server (http://milvus:19530); unset: bm25s and Chroma.",
    )
    milvus_token: str = Field(default="", description="Milvus token (user:password, or an API key).")
    milvus_db: str = Field(default="", description="Milvus database (unset: the server's default).")
    answer_cache: Literal["auto", "memory", "shared", "off"] = Field(
        default="auto",
        description="Keep answers the quality gate passed for the same question asked again (ask, chat, serve): "
        "memory (in-process), shared (ZHIWEN_DATABASE_URL, else a SQLite file in ZHIWEN_HOME), off; auto: shared "
        "with a database, else memory.",
    )
    answer_cache_ttl: float = Field(default=86_400.0, gt=0, description="Seconds a cached answer is kept.")
    answer_cache_size: int = Field(
        default=10_000, ge=1, description="Answers the in-process cache keeps at most."
    )
    rerank_base_url: str | None = Field(
        default=None,
        description="A cross-encoder rerank endpoint's base URL (vLLM's /v1, Hugging Face TEI, Jina, Cohere); "
        "unset: no rerank stage.",
    )
    rerank_model: str | None = Field(default=None, description="Rerank model name at rerank_base_url.")
    rerank_api_key: str = Field(default="EMPTY", description="API key for rerank_base_url.")
    rerank_api: Literal["rerank", "tei", "score"] = Field(
        default="rerank",
        description="Request shape: rerank (POST {base}/rerank with query/documents: vLLM, Jina, Cohere), tei "
        "(POST {base}/rerank with query/texts: Hugging Face TEI) or score (POST {base}/score: vLLM).",
    )
    rerank_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for the reranker before keeping the fused order."
    )
    embeddings_base_url: str | None = Field(default=None, description="OpenAI-compatible /v1 for embeddings.")
    embeddings_model: str | None = Field(default=None, description="Embedding model name at that URL.")
    embeddings_api_key: str = Field(default="EMPTY", description="API key for embeddings_base_url.")
    embeddings_prefix: str = Field(
        default="auto", pattern="^(auto|e5|input_type|none)$",
        description="How the endpoint tells queries from passages: auto, e5, input_type, none.",
    )  # fmt: skip
    # Two threads cut a query's embedding from 37/79 to 22/54 ms p50/p95 on this 2-core machine
    # (benchmarks/results/retrieval-latest.md): the query embedding is most of a hybrid search.
    embed_threads: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        description="Threads for the in-process embedding engine (default: 2, or 1 on a one-core machine).",
    )

    _endpoint_urls = field_validator("llm_base_url", "embeddings_base_url", "rerank_base_url")(
        _no_credentials
    )

    @field_validator("local_model")
    @classmethod
    def _a_known_model(cls, key: str) -> str:
        """An unknown name failed only when the model was started, without naming the variable."""
        from zhiwen.tools.models import MODELS  # its module locates packages; it imports nothing of zhiwen's

        if key not in MODELS:
            raise ValueError(f"unknown local model; choose one of: {', '.join(MODELS)}")
        return key

    @field_validator("home", mode="before")
    @classmethod
    def _a_folder(cls, home: object) -> object:
        """An empty ZHIWEN_HOME used to mean the current folder, and a file gave a traceback at first use."""
        if isinstance(home, str) and not home.strip():
            raise ValueError("empty: unset it for the default folder, or name a folder")
        if isinstance(home, (str, Path)) and Path(home).exists() and not Path(home).is_dir():
            raise ValueError("is a file, not a folder")
        return home

    @property
    def kb_root(self) -> Path:
        return self.home / "kbs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings read once from the environment."""
    return Settings()
