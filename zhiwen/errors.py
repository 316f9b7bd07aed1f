"""Errors a user can act on; the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "EmbeddingModelMismatch",
    "KnowledgeBaseBusy",
    "KnowledgeBaseNotFound",
    "LLMUnavailable",
    "ModelFileError",
    "StoreUnavailable",
    "UnsupportedFile",
    "ZhiwenError",
    "first_line",
]


def first_line(exc: BaseException) -> str:
    """``exc``'s message cut to one line for a one-line error (its kind when it has none): httpx adds a link
    on a second line, libpq a hint, pypdf a dump."""
    return (str(exc) or type(exc).__name__).splitlines()[0]


class ZhiwenError(Exception):
    """Base of every error zhiwen raises on purpose."""

    @property
    def detail(self) -> str:
        """What the command line and the log show: the message, or more where a client is told less."""
        return str(self)


class ModelFileError(ZhiwenError):
    """A bundled model file is missing, incomplete or fails its checksum."""


# The two errors a graph run raises to its caller are also builtin kinds: LangGraph's API server (Studio,
# `langgraph dev`) passes on the message only of builtin exception types and shows others as "An internal
# error occurred", which told a Studio user nothing about the knowledge base they had named.


class LLMUnavailable(ZhiwenError, RuntimeError):
    """The chat model endpoint cannot be reached or failed to start.

    Its message (``str``) is ``public``, what a server may tell its clients: no upstream body, log lines or
    paths. LangGraph's API server shows a run's error by its message, so a Studio or SDK client read the
    upstream's response body. ``detail``, for the log and the command line, keeps them (``repr`` shows it).
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        head = message.splitlines()[0] if message else "the chat model is unavailable"
        self.public = public or head
        self._detail = message
        super().__init__(self.public)

    @property
    def detail(self) -> str:
        return self._detail

    def __repr__(self) -> str:
        return f"LLMUnavailable({self._detail!r})"


class KnowledgeBaseNotFound(ZhiwenError, ValueError):
    """No knowledge base of that name exists (a wrong value of ``Context.kb``, ``--kb`` or the model name)."""


class KnowledgeBaseBusy(ZhiwenError):
    """Another writer (an ingest) holds the knowledge base, and the caller chose not to wait."""


class StoreUnavailable(ZhiwenError):
    """A configured shared store (the database, a Chroma or Milvus server) does not answer: retry later (503)."""


class EmbeddingModelMismatch(ZhiwenError):
    """A knowledge base was built with another embedding model than the one configured."""


class UnsupportedFile(ZhiwenError):
    """A file cannot be read as a document (wrong type, binary, empty, unreadable)."""
