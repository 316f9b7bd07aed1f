"""A knowledge base: its catalog and a retrieval backend holding both legs, kept consistent.

The catalog is SQLite in the base's folder, or the shared PostgreSQL (``ZHIWEN_DATABASE_URL``;
``zhiwen.memory.catalogs``).

The backend (``zhiwen.retrieval``) is the embedded one (bm25s and Chroma in the base's folder) or Milvus
(``ZHIWEN_MILVUS_URI``), chosen when the base is made. Consistency rule: a document is visible exactly when
its catalog row is committed. Chunks are written to the backend *before* that commit and removed *after* a
delete commits, and every search resolves hits through the catalog, so a chunk left by a killed ingest is
never returned (and is swept on the next ingest).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from zhiwen.errors import KnowledgeBaseNotFound, ZhiwenError
from zhiwen.memory.catalog import CatalogStore, DocumentRow
from zhiwen.memory.catalogs import CatalogHome, catalogs_for
from zhiwen.memory.source_names import source_name
from zhiwen.retrieval import RetrievalBackend, drop_backend, open_backend
from zhiwen.retrieval.local import LocalBackend
from zhiwen.tools.bm25 import BM25Index, ScoredId
from zhiwen.tools.embeddings import Embedder
from zhiwen.tools.fusion import FUSION_METHODS, FusionSpec, fuse_legs
from zhiwen.tools.language import detect_language, scripts
from zhiwen.tools.tokenize import CjkMode, tokenize
from zhiwen.tools.vectors import VectorStore

_T = TypeVar("_T")

# Fusion defaults chosen on both benchmark sets (benchmarks/results/retrieval-latest.md): equal weights with
# k=10 score nDCG@10 0.725 on scifact and 0.777 on rgb-zh. Dense weighted twice scored 0.789 on rgb-zh but
# 0.697 on scifact, below the 0.70 target there; equal weights have the better mean (0.751 against 0.743).
DEFAULT_WEIGHTS = {"bm25": 1.0, "dense": 1.0}
DEFAULT_RRF_K = 10
# How the legs are fused, chosen by leave-one-set-out over the five shared sets (benchmarks/fusion_loso.py,
# benchmarks/results/fusion-loso-2026-12-03.json): each leg's min-max normalised scores, weighted by how far its
# best score stands above its list. Held out, it beat the best single leg on every set (+0.004 to +0.021
# nDCG@10) and weighted RRF on the mean (0.8913 against 0.8872); RRF (k=10) stays available as "rrf".
DEFAULT_FUSION = "minmax_confidence"

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_RRF_K",
    "DEFAULT_WEIGHTS",
    "Hit",
    "KnowledgeBase",
    "SearchMode",
    "check_new_name",
    "delete_kb",
    "ensure_kb_exists",
    "kb_dir",
    "kb_exists",
    "list_kbs",
    "not_found_message",
]

SearchMode = Literal["hybrid", "bm25", "dense"]
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def kb_dir(root: Path, name: str) -> Path:
    """Folder of a knowledge base; names that are not plain ASCII (e.g. Chinese) map to a hash.

    A name holding bytes that are not UTF-8 (``--kb`` typed in a Latin-1 terminal) is a ``ZhiwenError``: it
    cannot be hashed, stored or printed."""
    if not name.strip():
        raise ZhiwenError("knowledge base name must not be empty")
    if source_name(name) != name:
        raise ZhiwenError(f"knowledge base name '{source_name(name)}' is not UTF-8 text; name it in UTF-8")
    slug = (
        name
        if _SAFE.fullmatch(name) and not name.startswith(".")
        else "kb-" + hashlib.sha1(name.encode()).hexdigest()[:16]
    )
    return root / slug


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]|\.\.|^[.\-_]|[.\-_]$|^\s|\s$")


def check_new_name(name: str) -> None:
    """Refuse a name for a new knowledge base that a store would reject or that misleads (``ZhiwenError``).

    ASCII names become folder and collection names as they are; a shared Chroma server refuses ``a..b`` or a
    name ending in ``.`` (its collection rule) only at the first upload, after the base was made. Names in
    other scripts (中文) are mapped to a hash and need no such care. Existing bases keep their names.
    """
    if not name or len(name) > 64:
        raise ZhiwenError(f"a knowledge base name has 1-64 characters (got {len(name)})")
    if _UNSAFE_NAME.search(name):
        raise ZhiwenError(
            f"knowledge base name {name!r} is refused: no '/', '\\', '..' or control characters, and it may "
            "not start or end with '.', '-', '_' or a space"
        )


def not_found_message(root: Path, name: str) -> str:
    """What every surface says of a missing knowledge base: which exist, and how to make this one."""
    known = ", ".join(n for n, _, _ in list_kbs(root)) or "none yet"
    try:
        check_new_name(name)
    except ZhiwenError as refused:  # no base can have it: advising `zhiwen ingest --kb` it would mislead
        return f"no knowledge base named {name!r} (existing: {known}); {refused}"
    return (
        f"no knowledge base named {name!r} (existing: {known}); create it by ingesting documents into it "
        f"(zhiwen ingest PATH --kb {shlex.quote(name)}, or POST /v1/kbs then upload), or choose an existing "
        "one (--kb on the command line, the model name over the API, Context.kb in a graph run)"
    )


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its fused score, each leg's rank/score, and where it comes from."""

    id: str
    doc_id: str
    text: str
    score: float
    legs: dict[str, dict[str, float]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KnowledgeBase:
    """Open with ``KnowledgeBase.open(root, name, embedder)``; ``create=True`` makes it if missing."""

    def __init__(
        self,
        path: Path,
        name: str,
        embedder: Embedder,
        cjk_mode: CjkMode = "search+bigram",
        home: CatalogHome | None = None,
    ) -> None:
        """``path``: the base's folder (its catalog when not shared, the embedded backend's files, uploads);
        ``home``: where its catalog lives (by default as configured for ``path``'s parent)."""
        self.path = path
        self.name = name
        self.embedder = embedder
        self._home = home or catalogs_for(path.parent)
        path.mkdir(parents=True, exist_ok=True)
        self.catalog: CatalogStore = self._home.open(path.name, name)
        stored_mode = self.catalog.get_meta("cjk_mode")
        self.cjk_mode: CjkMode = stored_mode if stored_mode else cjk_mode  # type: ignore[assignment]
        if stored_mode is None:
            self.catalog.set_meta("name", name)
            self.catalog.set_meta("cjk_mode", cjk_mode)
            self.catalog.set_meta("embedding_model", embedder.name)
        try:
            self.backend: RetrievalBackend = open_backend(
                path, self.catalog, name, embedder.name, fresh=stored_mode is None
            )
        except BaseException:
            self.catalog.close()
            raise
        # Its collection on a shared server (Chroma's, or Milvus's), kept in the catalog.
        self.server_collection = self.backend.collection
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhiwen-bm25")

    @classmethod
    def open(
        cls,
        root: Path,
        name: str,
        embedder: Embedder,
        create: bool = False,
        cjk_mode: CjkMode = "search+bigram",
    ) -> KnowledgeBase:
        """A base this call makes and then cannot open (its backend's server unreachable) is removed again:
        a failed first ingest, or ``POST /v1/kbs``, left an empty base behind that was listed as if it held
        something and that only that server could drop."""
        path = kb_dir(root, name)
        home = catalogs_for(root)
        made = False
        if not home.exists(path.name):
            if not create:
                raise KnowledgeBaseNotFound(not_found_message(root, name))
            check_new_name(name)
            made = True
        try:
            return cls(path, name, embedder, cjk_mode, home)
        except BaseException:
            if made:
                # Its backend did not open, so nothing reached it. Never waiting: a writer that made the same
                # base meanwhile keeps it, and so does a base that holds documents.
                with contextlib.suppress(Exception):
                    _delete(home, path, name, wait=False, only_if_empty=True, backend=False)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.backend.close()
        self.catalog.close()

    @contextlib.contextmanager
    def writing(self, wait: bool = True) -> Iterator[None]:
        """Hold the knowledge base's write lock (across processes and threads; across replicas when shared).

        Ingests, deletes and the orphan-vector sweep take it: the sweep deletes vectors whose chunks are
        not in the catalog, and another writer's vectors are in Chroma before its catalog commit, so a
        sweep running beside an ingest deleted vectors that were about to be used. Writers wait for
        each other (``wait=False``: ``KnowledgeBaseBusy`` at once, for the server, whose worker threads
        must not sit out a long ingest); searches never take it.
        """
        with self._home.write_lock(self.path.name, self.name, wait):
            # A writer that waited may find the base gone: dropped meanwhile (an empty one a failed first
            # ingest made is dropped by that ingest). Writing on would land in deleted files or rows.
            if not self._home.exists(self.path.name):
                raise KnowledgeBaseNotFound(
                    f"knowledge base {self.name!r} was deleted while this write waited for it; nothing was written"
                )
            yield

    def ensure_not_busy(self) -> None:
        """``KnowledgeBaseBusy`` if another writer holds the write lock right now."""
        with self.writing(wait=False):
            pass

    def tokens(self, text: str) -> list[str]:
        return tokenize(text, self.cjk_mode)

    # --- the embedded backend's parts (tests and benchmarks look at them) ------------------------------
    @property
    def vectors(self) -> VectorStore:
        """The Chroma store of the embedded backend."""
        return self._local().vectors

    def bm25(self) -> BM25Index:
        """The embedded backend's BM25 index for the current catalog generation (rebuilt if stale)."""
        return self._local().index()

    def rebuild_bm25(self, generation: int | None = None) -> BM25Index:
        return self._local().rebuild(generation)

    def _local(self) -> LocalBackend:
        if not isinstance(self.backend, LocalBackend):
            raise ZhiwenError(f"knowledge base {self.name!r} keeps its chunks in {self.backend.kind}")
        return self.backend

    # --- answer allow-list -----------------------------------------------------------------------------
    def allow_list(self) -> list[str]:
        """The domains, e-mail addresses and phone numbers answers from this base may give (``kb allow``)."""
        items: list[str] = json.loads(self.catalog.get_meta("answer_allow_list") or "[]")
        return items

    def allowed_contacts(self) -> list[str]:
        """What answers may give: the allow-list and the hotline."""
        hotline = self.hotline()
        return [*self.allow_list(), *([hotline] if hotline else [])]

    def set_allow_list(self, items: list[str]) -> list[str]:
        """Replace the allow-list; entries are stripped, lower-cased and de-duplicated."""
        clean = list(dict.fromkeys(i.strip().lower() for i in items if i.strip()))
        self.catalog.set_meta("answer_allow_list", json.dumps(clean, ensure_ascii=False))
        return clean

    def hotline(self) -> str:
        """The official hotline the bank persona hands customers over to (``kb hotline``); "" when unset."""
        return self.catalog.get_meta("hotline") or ""

    def set_hotline(self, number: str) -> str:
        """Set (or, with "", clear) the hotline; answers may always give it, as if it were allow-listed."""
        self.catalog.set_meta("hotline", number.strip())
        return number.strip()

    # --- documents ----------------------------------------------------------------------------------
    def documents(self) -> list[DocumentRow]:
        return self.catalog.documents()

    def delete_document(self, ref: str, wait: bool = True) -> list[DocumentRow]:
        """Remove documents by id, source path or folder from both indexes; returns what was removed.

        A path whose name is not UTF-8 is looked up as its source is stored (``source_name``)."""
        ref = source_name(ref)
        if not ref.strip("/ \t\n"):
            # "" or "/" would match every document as a folder prefix: never delete all by accident.
            raise ZhiwenError(f"no document {ref!r}: name a document id, source path or folder")
        with self.writing(wait):  # read what to delete under the lock too: an ingest may replace it
            found = self.catalog.find_documents(ref)
            if not found and not os.path.isabs(ref):  # a path typed relative to here; sources are absolute
                found = self.catalog.find_documents(os.path.abspath(ref))
            if not found:
                raise ZhiwenError(f"no document {ref!r} in knowledge base {self.name!r}")
            chunk_ids = [cid for d in found for cid in self.catalog.chunk_ids_of(d.doc_id)]
            with self.catalog.transaction() as db:
                for d in found:
                    db.remove_document(d.doc_id)
            self.backend.delete(chunk_ids)
        self.backend.committed()
        return found

    def sweep_orphan_vectors(self) -> int:
        """Delete vectors whose chunk is not in the catalog (left by an interrupted ingest).

        Call it only under ``writing()``: outside it, another writer's fresh vectors look orphaned.
        """
        orphans = list(self.backend.all_ids() - self.catalog.all_chunk_ids())
        if orphans:
            self.backend.delete(orphans)
        return len(orphans)

    # --- search -------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        weights: Mapping[str, float] | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        candidates: int = 50,
        timings: dict[str, float] | None = None,
        fusion: str = DEFAULT_FUSION,
    ) -> list[Hit]:
        """Top ``top_k`` chunks for ``query``; each leg fetches ``max(candidates, top_k)`` before fusion.

        ``timings``, when given, receives the seconds of each leg that ran: ``embed`` (the query vector),
        ``dense`` (the vector search) and ``bm25`` (which runs beside them)."""
        if not query.strip():
            raise ZhiwenError("the search query is empty")
        if mode not in ("hybrid", "bm25", "dense"):
            raise ZhiwenError(f"search mode must be hybrid, bm25 or dense, not {mode!r}")
        if top_k < 1:
            raise ZhiwenError("top_k must be at least 1")
        if fusion not in FUSION_METHODS:
            raise ZhiwenError(f"fusion must be one of {', '.join(FUSION_METHODS)}, not {fusion!r}")
        n = max(candidates, top_k)
        legs: dict[str, list[ScoredId]] = {}
        # The query embedding runs alone (its two threads stall when a third competes for the cores); the
        # BM25 leg then runs in the pool while Chroma searches. On 200 real queries this was 2-3 ms faster at
        # p50 than embedding beside BM25 (benchmarks/retrieval.py conditions, 30k chunks, three runs).
        spent = timings if timings is not None else {}

        def timed(leg: str, work: Callable[[], _T]) -> _T:
            started = time.perf_counter()
            try:
                return work()
            finally:
                spent[leg] = time.perf_counter() - started

        vector = timed("embed", lambda: self.embedder.embed_query(query)) if mode != "bm25" else None
        bm25_future = (
            self._pool.submit(timed, "bm25", lambda: self.backend.bm25(self.tokens(query), n))
            if mode != "dense"
            else None
        )
        dense = timed("dense", lambda: self.backend.dense(vector, n)) if vector is not None else None
        if bm25_future is not None:
            legs["bm25"] = bm25_future.result()
        if dense is not None:
            legs["dense"] = dense
        w = {**DEFAULT_WEIGHTS, **(weights or {})}
        fused = (
            fuse_legs(legs, FusionSpec(fusion, w["bm25"], w["dense"], rrf_k), self._blind(query, legs))
            if mode == "hybrid"
            else [(h.id, h.score) for h in legs[mode]]
        )
        by_leg = {name: {h.id: h for h in hits} for name, hits in legs.items()}
        hits: list[Hit] = []
        # Read texts for the best ids only (top_k plus a margin, more if some are not committed): the
        # fused list holds up to 2n ids; reading 100 rgb-zh chunks took 1.5 ms, 15 took 0.25 ms.
        start, batch = 0, top_k + 5
        while len(hits) < top_k and start < len(fused):
            part = fused[start : start + batch]
            rows = self.catalog.chunks([cid for cid, _ in part])
            for cid, score in part:
                row = rows.get(cid)
                if row is None:
                    continue  # not committed (interrupted ingest) or deleted meanwhile
                leg_info = {
                    name: {"rank": float(found[cid].rank), "score": found[cid].score}
                    for name, found in by_leg.items()
                    if cid in found
                }
                hits.append(Hit(cid, row.doc_id, row.text, score, leg_info, row.metadata))
                if len(hits) == top_k:
                    break
            start, batch = start + batch, batch * 2
        return hits

    def _blind(self, query: str, legs: Mapping[str, list[ScoredId]]) -> dict[str, set[str]]:
        """The dense leg's chunks that BM25 could not have found: Chinese ones for a question with no Chinese
        character in it, English ones for a question with no Latin letter (no word in common). The fusion
        scores them by the dense leg alone (``fuse_legs``). A question in both scripts blinds BM25 to nothing.
        Only the chunks BM25 did not return are read (about 1 ms for 50)."""
        asked_in = scripts(query)
        if len(asked_in) != 1 or "bm25" not in legs or "dense" not in legs:
            return {}
        (asked,) = asked_in
        found = {h.id for h in legs["bm25"]}
        unseen = [h.id for h in legs["dense"] if h.id not in found]
        rows = self.catalog.chunks(unseen) if unseen else {}
        return {"bm25": {cid for cid, row in rows.items() if detect_language(row.text, asked) != asked}}

    def stats(self) -> dict[str, Any]:
        docs, chunks = self.catalog.counts()
        return {
            "name": self.name,
            "documents": docs,
            "chunks": chunks,
            "embedding_model": self.embedder.name,
            "path": str(self.path),
        }


def list_kbs(root: Path) -> list[tuple[str, int, int]]:
    """(name, documents, chunks) of every knowledge base under ``root`` (or in the shared database)."""
    home = catalogs_for(root)
    out = []
    for kb, name in home.names():
        try:
            catalog = home.open(kb, name, create=False)
        except KnowledgeBaseNotFound:
            continue  # deleted since its name was read
        docs, chunks = catalog.counts()
        out.append((catalog.get_meta("name") or name, docs, chunks))
        catalog.close()
    return out


def kb_exists(root: Path, name: str) -> bool:
    """Whether a knowledge base named ``name`` exists (under ``root``, or in the shared database)."""
    return catalogs_for(root).exists(kb_dir(root, name).name)


def ensure_kb_exists(root: Path, name: str) -> None:
    """``KnowledgeBaseNotFound`` with the message every surface gives unless ``name`` exists; without opening
    it, so a base that cannot be opened (embedded with another model, its Milvus unset) can still be named."""
    if not kb_exists(root, name):
        raise KnowledgeBaseNotFound(not_found_message(root, name))


def delete_kb(
    root: Path,
    name: str,
    before: Callable[[], None] | None = None,
    wait: bool = True,
    only_if_empty: bool = False,
) -> bool:
    """Delete a knowledge base once no ingest writes into it; ``before()`` runs just before. Returns whether
    it was deleted.

    Its backend's collection goes first (a server that is down leaves the knowledge base whole), then its
    catalog, then its folder here (other replicas' folders hold only what they rebuild from the catalog).

    ``only_if_empty``: only a base that holds no document, as a failed first ingest leaves it (one holding
    documents is kept: ``False``). Its collection is dropped if its server answers and left there if not: it
    can hold only vectors of chunks never committed, and an empty base that only that server could drop was
    worse.
    """
    path = kb_dir(root, name)
    home = catalogs_for(root)
    if not home.exists(path.name):
        raise KnowledgeBaseNotFound(f"no knowledge base named {name!r}")
    return _delete(home, path, name, before, wait, only_if_empty)


def _delete(
    home: CatalogHome,
    path: Path,
    name: str,
    before: Callable[[], None] | None = None,
    wait: bool = True,
    only_if_empty: bool = False,
    backend: bool = True,
) -> bool:
    """``delete_kb``'s work; ``backend=False`` leaves the backend alone (it never opened)."""
    with home.write_lock(
        path.name, name, wait
    ):  # an ingest into it (any process, any replica) finishes first
        catalog = home.open(path.name, name, create=False)
        try:
            if only_if_empty and catalog.counts()[0]:
                return False
            if before is not None:
                before()
            if backend:
                try:
                    drop_backend(catalog, path)
                except ZhiwenError:
                    if not only_if_empty:
                        raise
        finally:
            catalog.close()
        home.drop(path.name)
        if path.exists():
            shutil.rmtree(path)
    return True
