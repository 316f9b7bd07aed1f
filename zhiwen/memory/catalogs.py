"""Where an installation's knowledge-base catalogs live, and the write lock of each.

Without ``ZHIWEN_DATABASE_URL``: a ``kb.sqlite`` in each knowledge base's folder under ``ZHIWEN_HOME/kbs``,
locked with a file lock (``FolderCatalogs``, as before). With it: the shared PostgreSQL, locked with an
advisory lock (``SharedCatalogs``), so N replicas see one set of knowledge bases without sharing a disk. A
catalog still in a folder when the database is first configured is moved into the database the first time it
is looked at, under its write lock, so setting the URL never hides a knowledge base.

Knowledge bases are named here by their folder name (``kb_dir(root, name).name``): it is unique per name
and safe in any store.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from zhiwen.errors import KnowledgeBaseBusy, KnowledgeBaseNotFound
from zhiwen.memory.catalog import Catalog, CatalogStore
from zhiwen.settings import get_settings

__all__ = ["CatalogHome", "FolderCatalogs", "SharedCatalogs", "catalogs_for"]


class CatalogHome(Protocol):
    def exists(self, kb: str) -> bool: ...

    def names(self) -> list[tuple[str, str]]:
        """(folder name, knowledge base name) of every knowledge base, by folder name."""

    def open(self, kb: str, name: str, create: bool = True) -> CatalogStore:
        """The catalog of ``kb``, made if missing (callers check ``exists`` to tell "not found"). With
        ``create=False`` nothing is written, and a base that is gone raises ``KnowledgeBaseNotFound``: a
        reader (the listing) must not bring back a base that another process or replica dropped since it read
        the names."""

    def drop(self, kb: str) -> None:
        """Forget the catalog (the caller removes the folder and the backend's collection)."""

    def write_lock(self, kb: str, name: str, wait: bool) -> contextlib.AbstractContextManager[None]:
        """Held by every writer of ``kb`` (any process, and any replica when shared); ``wait=False`` raises
        ``KnowledgeBaseBusy`` at once if another holds it."""


class FolderCatalogs:
    """``kb.sqlite`` files in the knowledge bases' folders under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self, kb: str) -> bool:
        return (self.root / kb / "kb.sqlite").exists()

    def names(self) -> list[tuple[str, str]]:
        out = []
        if self.root.exists():
            for path in sorted(self.root.iterdir()):
                if (path / "kb.sqlite").exists():
                    cat = Catalog(path / "kb.sqlite")
                    out.append((path.name, cat.get_meta("name") or path.name))
                    cat.close()
        return out

    def open(self, kb: str, name: str, create: bool = True) -> CatalogStore:
        if create:
            (self.root / kb).mkdir(parents=True, exist_ok=True)
        elif not self.exists(kb):
            raise KnowledgeBaseNotFound(f"knowledge base folder {kb!r} is gone")
        return Catalog(self.root / kb / "kb.sqlite")

    def drop(self, kb: str) -> None:
        """Nothing beyond the folder, which the caller removes."""

    @contextlib.contextmanager
    def write_lock(self, kb: str, name: str, wait: bool) -> Iterator[None]:
        with open(self.root / kb / "write.lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                raise KnowledgeBaseBusy(
                    f"knowledge base {name!r} is being written (an ingest is running); try again when it ends"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class SharedCatalogs:
    """Catalogs in the shared database; folder catalogs under ``root`` are moved in when first seen."""

    def __init__(self, root: Path, url: str) -> None:
        from zhiwen.memory.catalog_pg import PostgresCatalogs

        self.root = root
        self._db = PostgresCatalogs(url)

    def _adopt(self, kb: str) -> None:
        legacy = self.root / kb / "kb.sqlite"
        if legacy.exists():
            with self._db.write_lock(kb, kb, wait=True):
                self._db.adopt(kb, legacy)

    def exists(self, kb: str) -> bool:
        self._adopt(kb)
        return self._db.exists(kb)

    def names(self) -> list[tuple[str, str]]:
        if self.root.exists():
            for path in sorted(self.root.iterdir()):
                self._adopt(path.name)
        return self._db.names()

    def open(self, kb: str, name: str, create: bool = True) -> CatalogStore:
        self._adopt(kb)
        if create:
            return self._db.create(kb, name)
        if not self._db.exists(kb):
            raise KnowledgeBaseNotFound(f"knowledge base {name!r} is gone")
        return self._db.catalog(kb)

    def drop(self, kb: str) -> None:
        self._db.drop(kb)

    def write_lock(self, kb: str, name: str, wait: bool) -> contextlib.AbstractContextManager[None]:
        return self._db.write_lock(kb, name, wait)


def catalogs_for(root: Path) -> CatalogHome:
    """The catalogs of the knowledge bases under ``root``: shared when ``ZHIWEN_DATABASE_URL`` is set."""
    url = get_settings().database_url
    return SharedCatalogs(root, url) if url else FolderCatalogs(root)
