"""Both legs in one Milvus collection per knowledge base: embedded Milvus Lite (a ``.db`` path) or a server.

Each row holds a chunk's id, its document id, its BM25 terms and its dense vector; Milvus derives a sparse
BM25 vector from the terms (a BM25 ``Function``) and keeps both indexes. The terms are zhiwen's own tokens
(``zhiwen.tools.tokenize``: jieba search-mode words plus character bigrams for Chinese, stemmed English)
joined by spaces, so the server's analyzer only splits at spaces and the BM25 leg matches the embedded one:
Milvus's own jieba analyzer scored lower (benchmarks/milvus_backend.py). A Milvus server splits them with its
``whitespace`` tokenizer; Milvus Lite has none, and its ``standard`` one (``\\w+``, lower-cased) splits
zhiwen's tokens, which are runs of word characters, exactly at the spaces.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zhiwen.errors import EmbeddingModelMismatch, StoreUnavailable, ZhiwenError
from zhiwen.settings import get_settings, redact_url
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.embeddings import Vectors

__all__ = ["MilvusBackend", "check_uri", "drop_collection", "terms_text"]

_MODEL_PROPERTY = "zhiwen.embedding_model"
_ANALYZER_PROPERTY = "zhiwen.analyzer"
_MAX_TERMS_BYTES = 65_535  # a VARCHAR field's limit
_BATCH = 1000
_CONNECT_TIMEOUT = 10.0
# BM25 as zhiwen's embedded index computes it (zhiwen/tools/bm25.py); Milvus defaults to k1=1.5.
_BM25_PARAMS = {"bm25_k1": 1.2, "bm25_b": 0.75}
# HNSW as Chroma builds and searches it by default (M 16, construction 100, search 100).
_HNSW_BUILD = {"M": 16, "efConstruction": 100}
_HNSW_EF = 100

_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()


def check_uri(uri: str) -> str:
    """``uri`` as pymilvus takes it: an ``http(s)://``/``tcp://`` server, or an absolute ``.db`` path."""
    if uri.startswith(("http://", "https://", "tcp://")):
        return uri
    if "://" in uri or not uri.endswith(".db"):
        raise ZhiwenError(
            f"ZHIWEN_MILVUS_URI must be an http(s):// or tcp:// URL of a Milvus server, or a path ending in .db "
            f"for embedded Milvus Lite (got {redact_url(uri)!r})"
        )
    path = Path(uri).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _client() -> Any:
    """The process's client of the configured Milvus (one per URI, token and database; thread-safe)."""
    settings = get_settings()
    if not settings.milvus_uri:
        raise ZhiwenError("this knowledge base keeps its chunks in Milvus: set ZHIWEN_MILVUS_URI")
    uri = check_uri(settings.milvus_uri)
    key = (uri, settings.milvus_token, settings.milvus_db)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise ZhiwenError(
                    'ZHIWEN_MILVUS_URI is set but pymilvus is not installed: pip install "zhiwen[milvus]"'
                ) from exc
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # it logs every failed call as an error
            try:
                client = MilvusClient(
                    uri=uri, token=settings.milvus_token, db_name=settings.milvus_db, timeout=_CONNECT_TIMEOUT
                )
            except Exception as exc:  # pymilvus raises MilvusException, and others from below it
                # StoreUnavailable: the HTTP server answers 503 (retry later), as for an unreachable database.
                raise StoreUnavailable(f"cannot reach Milvus at {redact_url(uri)}: {_reason(exc)}") from exc
            _clients[key] = client
        return client


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).splitlines()[0]


def close_clients() -> None:
    """Close every Milvus client of this process (tests, and a knowledge base dropped then made again)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def terms_text(tokens: list[str]) -> str:
    """The BM25 field's text: the tokens joined by spaces, cut at a token boundary to fit a VARCHAR."""
    text = " ".join(tokens)
    if len(text.encode()) <= _MAX_TERMS_BYTES:
        return text
    cut = text.encode()[:_MAX_TERMS_BYTES].decode(errors="ignore")
    return cut[: cut.rfind(" ")] if " " in cut else ""


def drop_collection(name: str) -> None:
    """Delete a dropped knowledge base's collection (gone already: nothing to do)."""
    client = _client()
    _call(
        "drop its collection", lambda: client.drop_collection(name) if client.has_collection(name) else None
    )


def _call(what: str, work: Any) -> Any:
    """``work()``, with a Milvus failure turned into a one-line ``ZhiwenError`` naming the server."""
    try:
        return work()
    except ZhiwenError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("pymilvus", "grpc")):
            uri = redact_url(get_settings().milvus_uri or "")
            message = f"Milvus at {uri} failed to {what}: {_reason(exc)}"
            # The server gone mid-session (its first connection is checked in _client): retry later, a 503.
            if _unreachable(exc):
                raise StoreUnavailable(message) from exc
            raise ZhiwenError(message) from exc
        raise


def _unreachable(exc: BaseException) -> bool:
    """A Milvus or gRPC error that says the server cannot be reached (not a refused request)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(mark in text for mark in ("unavailable", "connect", "deadline", "timeout", "timed out"))


class MilvusBackend:
    kind: Literal["milvus"] = "milvus"

    def __init__(self, collection: str, embedding_model: str) -> None:
        self.collection = collection
        self.embedding_model = embedding_model
        self._client = _client()
        self._ready = False
        self._ready_lock = threading.Lock()
        self._exists()  # checks the embedding model of a collection made before

    # --- the collection ------------------------------------------------------------------------------
    def _exists(self) -> bool:
        """Whether the collection is there (and loaded); made by the first ``add`` of any replica."""
        if self._ready:
            return True
        with self._ready_lock:
            if not self._ready and _call(
                "look up a collection", lambda: self._client.has_collection(self.collection)
            ):
                props = _call(
                    "describe a collection", lambda: self._client.describe_collection(self.collection)
                )
                stored = (props.get("properties") or {}).get(_MODEL_PROPERTY)
                if stored != self.embedding_model:
                    raise EmbeddingModelMismatch(
                        f"this knowledge base was embedded with {stored!r}, but the configured model is "
                        f"{self.embedding_model!r}; use the same model, or re-ingest into a new knowledge base"
                    )
                _call("load a collection", lambda: self._client.load_collection(self.collection))
                self._ready = True
        return self._ready

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        client = self._client
        for tokenizer in ("whitespace", "standard"):  # a Milvus server; Milvus Lite (see the module doc)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
            schema.add_field("terms", DataType.VARCHAR, max_length=_MAX_TERMS_BYTES, enable_analyzer=True,
                             analyzer_params={"tokenizer": tokenizer})  # fmt: skip
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["terms"], output_field_names=["sparse"]))  # fmt: skip
            index = client.prepare_index_params()
            index.add_index("dense", index_type="HNSW", metric_type="COSINE", params=_HNSW_BUILD)
            index.add_index(
                "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=_BM25_PARAMS
            )
            try:
                # Strong: a chunk one replica wrote is searchable on every other one at once.
                client.create_collection(
                    self.collection, schema=schema, index_params=index, consistency_level="Strong",
                    properties={_MODEL_PROPERTY: self.embedding_model, _ANALYZER_PROPERTY: tokenizer},
                )  # fmt: skip
                return
            except Exception as exc:
                if client.has_collection(self.collection):
                    return  # another replica made it first
                if tokenizer == "whitespace" and "tokenizer" in _reason(exc):
                    continue
                raise ZhiwenError(
                    f"Milvus at {redact_url(get_settings().milvus_uri or '')} refused to create the collection "
                    f"{self.collection!r}: {_reason(exc)}"
                ) from exc

    # --- the backend interface -----------------------------------------------------------------------
    def add(self, ids: list[str], doc_ids: list[str], tokens: list[list[str]], vectors: Vectors) -> None:
        if not ids:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if not self._exists():
            with self._ready_lock:
                self._create(int(matrix.shape[1]))
            self._exists()
        for start in range(0, len(ids), _BATCH):
            rows = [
                {"id": cid, "doc_id": did, "terms": terms_text(toks), "dense": vec.tolist()}
                for cid, did, toks, vec in zip(
                    ids[start : start + _BATCH], doc_ids[start : start + _BATCH],
                    tokens[start : start + _BATCH], matrix[start : start + _BATCH], strict=True,
                )
            ]  # fmt: skip
            _call("write chunks", lambda rows=rows: self._client.upsert(self.collection, rows))

    def delete(self, ids: list[str]) -> None:
        if not ids or not self._exists():
            return
        for start in range(0, len(ids), _BATCH):
            part = ids[start : start + _BATCH]
            _call("delete chunks", lambda part=part: self._client.delete(self.collection, ids=part))

    def all_ids(self) -> set[str]:
        if not self._exists():
            return set()
        out: set[str] = set()

        def read() -> None:
            iterator = self._client.query_iterator(
                self.collection, batch_size=5000, filter="", output_fields=["id"]
            )
            try:
                while batch := iterator.next():
                    out.update(str(row["id"]) for row in batch)
            finally:
                iterator.close()

        _call("list chunk ids", read)
        return out

    def count(self) -> int:
        if not self._exists():
            return 0
        rows = _call(
            "count chunks", lambda: self._client.query(self.collection, filter="", output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"])

    def dense(self, vector: Vectors, k: int) -> list[ScoredId]:
        if k <= 0 or not self._exists():
            return []
        query = [np.asarray(vector, dtype=np.float32).tolist()]
        params = {"metric_type": "COSINE", "params": {"ef": max(_HNSW_EF, k)}}
        return self._search("search vectors", query, "dense", params, k)

    def bm25(self, tokens: list[str], k: int) -> list[ScoredId]:
        text = terms_text(tokens)
        if k <= 0 or not text or not self._exists():
            return []
        return self._search("search BM25", [text], "sparse", {"metric_type": "BM25"}, k)

    def committed(self) -> None:
        """Seal what the ingest wrote (Milvus keeps the BM25 statistics itself, nothing to rebuild).

        Milvus Lite rebuilds the indexes of unsealed rows at every search: 7,000 unsealed rgb-zh chunks
        cost about 3 s a query, sealed ones milliseconds. One flush per ingest, not per batch, keeps the
        segments few (Milvus Lite weighs BM25 terms by per-segment statistics)."""
        if self._exists():
            _call("flush", lambda: self._client.flush(self.collection))

    def close(self) -> None:
        """The client is shared by the process's knowledge bases (``close_clients`` closes it)."""

    def _search(
        self, what: str, data: list[Any], field: str, params: dict[str, Any], k: int
    ) -> list[ScoredId]:
        result = _call(what, lambda: self._client.search(self.collection, data=data, anns_field=field, limit=k,
                                                         search_params=params, output_fields=["id"]))  # fmt: skip
        hits = [(str(hit["id"]), float(hit["distance"])) for hit in result[0]]
        if field == "sparse":
            # Milvus Lite reports a BM25 score as its negative (a distance), a Milvus server as it is.
            hits = [(cid, abs(score)) for cid, score in hits if score != 0]
        return [ScoredId(cid, score, rank) for rank, (cid, score) in enumerate(hits, start=1)]
