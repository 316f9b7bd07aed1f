"""Process-wide open knowledge bases and the embedder, shared by nodes, server, CLI and evals."""

from __future__ import annotations

import threading
from pathlib import Path

from zhiwen.errors import KnowledgeBaseBusy, KnowledgeBaseNotFound
from zhiwen.memory.kb import KnowledgeBase, delete_kb
from zhiwen.settings import Settings, get_settings
from zhiwen.tools.embedding_cache import CachedEmbedder
from zhiwen.tools.embeddings import Embedder, make_embedder

__all__ = ["close_all", "drop_kb", "forget_kb", "get_embedder", "open_kb"]

_lock = threading.RLock()
_embedders: dict[tuple[str, ...], Embedder] = {}
_kbs: dict[tuple[Path, str], KnowledgeBase] = {}
_dropping: set[tuple[Path, str]] = set()


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process-wide embedder, with the on-disk passage cache in front of it."""
    settings = settings or get_settings()
    with _lock:
        # Keyed by what defines the embedder (not id(settings): ids are reused after garbage collection).
        key = (str(settings.cache_dir), settings.embeddings_base_url or "", settings.embeddings_model or "")
        if key not in _embedders:
            _embedders[key] = CachedEmbedder(
                make_embedder(settings), settings.cache_dir / "embeddings.sqlite"
            )
        return _embedders[key]


def open_kb(name: str, create: bool = False, settings: Settings | None = None) -> KnowledgeBase:
    """An open knowledge base, shared within the process."""
    settings = settings or get_settings()
    key = (settings.kb_root, name)
    with _lock:
        if key in _dropping:
            raise KnowledgeBaseNotFound(f"knowledge base {name!r} is being deleted")
        kb = _kbs.get(key)
        if kb is None:
            kb = KnowledgeBase.open(settings.kb_root, name, get_embedder(settings), create=create)
            _kbs[key] = kb
        return kb


def forget_kb(name: str, settings: Settings | None = None) -> None:
    """Close and drop a cached knowledge base (after it is deleted on disk)."""
    settings = settings or get_settings()
    with _lock:
        kb = _kbs.pop((settings.kb_root, name), None)
    if kb is not None:
        kb.close()


def drop_kb(
    name: str, settings: Settings | None = None, wait: bool = True, only_if_empty: bool = False
) -> bool:
    """Delete a knowledge base from disk, safely beside the requests and ingests using it; returns whether
    it was deleted (``only_if_empty``: only if it holds no document, see ``delete_kb``).

    It stops being opened at once (``KnowledgeBaseNotFound``): before, a request opening it between its
    close and the deletion cached a handle to deleted files. The deletion waits for a running ingest (the
    knowledge base's write lock), then closes it (which releases Chroma's per-folder system, so a new
    knowledge base of the same name starts clean) and removes its folder.
    """
    settings = settings or get_settings()
    key = (settings.kb_root, name)
    with _lock:
        if key in _dropping:
            raise KnowledgeBaseNotFound(f"knowledge base {name!r} is being deleted")
        kb = _kbs.pop(key, None)
        _dropping.add(key)
    closed = False

    def close() -> None:
        nonlocal closed
        if kb is not None and not closed:
            closed = True
            kb.close()

    dropped = True  # after any other error its handle may be closed: it is not kept
    try:
        dropped = delete_kb(settings.kb_root, name, before=close, wait=wait, only_if_empty=only_if_empty)
        return dropped
    except KnowledgeBaseBusy:
        dropped = False
        raise
    except BaseException:
        close()  # not kept, so closed here if the deletion failed before it closed it (a leaked handle)
        raise
    finally:
        with _lock:
            if not dropped and kb is not None:  # busy, or holding documents: it stays open for its users
                _kbs.setdefault(key, kb)
            _dropping.discard(key)


def close_all() -> None:
    with _lock:
        for kb in _kbs.values():
            kb.close()
        _kbs.clear()
