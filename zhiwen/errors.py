"""Errors a user can act on; the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "EmbeddingModelMismatch",
    "KnowledgeBaseBusy",
    "KnowledgeBaseNotFound",
    "LLMUnavailable",
    "ModelFileError",
    "UnsupportedFile",
    "ZhiwenError",
]


class ZhiwenError(Exception):
    """Base of every error zhiwen raises on purpose."""


class ModelFileError(ZhiwenError):
    """A bundled model file is missing, incomplete or fails its checksum."""


class LLMUnavailable(ZhiwenError):
    """The chat model endpoint cannot be reached or failed to start."""


class KnowledgeBaseNotFound(ZhiwenError):
    """No knowledge base of that name exists."""


class KnowledgeBaseBusy(ZhiwenError):
    """Another writer (an ingest) holds the knowledge base, and the caller chose not to wait."""


class EmbeddingModelMismatch(ZhiwenError):
    """A knowledge base was built with another embedding model than the one configured."""


class UnsupportedFile(ZhiwenError):
    """A file cannot be read as a document (wrong type, binary, empty, unreadable)."""
