"""Server settings from ``ZHIWEN_*`` environment variables; placeholder API keys are refused."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhiwen.settings import DEFAULT_KB

__all__ = ["ServerSettings", "get_server_settings"]

_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "your-api-key", "sk-xxx", "xxx", "test"}


class ServerSettings(BaseSettings):
    """How the server authenticates, limits and reports. Keys: comma-separated ``ZHIWEN_API_KEYS``."""

    model_config = SettingsConfigDict(env_prefix="ZHIWEN_", extra="ignore", hide_input_in_errors=True)

    api_keys: str = Field(default="", description="Comma-separated admin bearer tokens accepted by the API.")
    allow_open: bool = Field(
        default=False, description="Serve without API keys (local use only) while no key exists."
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated web origins (https://chat.example.com) whose pages may call the API "
        "(CORS); on a server without keys, the only other sites let through.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated extra host names a server without keys answers to (beside loopback).",
    )
    keys_refresh_seconds: float = Field(
        default=2.0, gt=0, le=300, description="How often a running server re-reads the stored keys."
    )
    default_kb: str = Field(
        default=DEFAULT_KB, description="Knowledge base used when the model name is 'zhiwen' or 'default'."
    )
    rate_per_minute: int = Field(default=120, ge=1, description="Requests per minute per API key.")
    max_concurrent: int = Field(default=16, ge=1, description="Requests in flight per API key.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest JSON body accepted.")
    max_upload_bytes: int = Field(default=20_000_000, ge=1024, description="Largest uploaded document.")
    max_kbs_per_key: int = Field(default=100, ge=1, description="Knowledge bases one key may create.")
    max_threads_per_key: int = Field(default=10_000, ge=1, description="Threads one key may keep.")
    max_queued_jobs: int = Field(default=16, ge=1, description="Ingest jobs the server queues at most.")
    max_queued_upload_bytes: int = Field(
        default=200_000_000, ge=1, description="Bytes one key may have waiting to be ingested."
    )
    max_message_chars: int = Field(default=200_000, ge=1, description="Longest single chat message accepted.")
    ping_seconds: float = Field(default=10.0, gt=0, description="SSE keep-alive ping interval.")
    error_window_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Wait this long for the first event so early upstream errors get an HTTP status.",
    )
    otel: Literal["off", "console", "otlp"] | None = Field(
        default=None,
        description="Tracing: off, console, or otlp (uses OTEL_EXPORTER_OTLP_*); unset: OTEL_TRACES_EXPORTER "
        "decides (off when that is unset too); OTEL_SDK_DISABLED=true turns it off.",
    )
    otel_record_content: bool = Field(default=False, description="Record prompt and document text in spans.")
    stream_drafts: bool = Field(
        default=True,
        description="Stream answer tokens as generated; false: only answers the quality gate has passed.",
    )
    thread_from_user: bool = Field(
        default=False,
        description="Let a request's OpenAI `user` field select a conversation thread (one per user). Off: "
        "chat UIs send `user` with every chat of a person, which would fold them all into one thread.",
    )
    gc_freeze: bool = Field(
        default=True,
        description="After start-up (and the default knowledge base's opening), exclude the objects alive "
        "then from garbage collection: a full collection otherwise stalls every stream for ~100 ms.",
    )

    @field_validator("default_kb")
    @classmethod
    def _a_possible_name(cls, name: str) -> str:
        """No knowledge base can be named so: refused at start, not logged at each request falling back to it."""
        if not name.strip() or len(name) > 64 or re.search(r"[/\\\x00-\x1f\x7f]", name):
            raise ValueError(
                "a knowledge base name has 1-64 characters and no '/', '\\' or control characters"
            )
        return name

    @field_validator("api_keys")
    @classmethod
    def _no_placeholders(cls, value: str) -> str:
        for key in (k.strip() for k in value.split(",") if k.strip()):
            if key.lower() in _PLACEHOLDERS or len(key) < 12:
                raise ValueError("ZHIWEN_API_KEYS holds a placeholder or a key shorter than 12 characters")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    return ServerSettings()
