"""BM25: scores equal a reference Lucene BM25, persistence keeps the generation, edge cases."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from zhiwen.tools.bm25 import BM25Index

K1, B = 1.2, 0.75


def reference_bm25(corpus: list[list[str]], query: list[str]) -> list[float]:
    """Lucene BM25 (Lucene >= 8, the bm25s "lucene" method): no constant (k1 + 1) factor in the tf part.

    idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tf part = tf / (tf + k1 * (1 - b + b * dl / avgdl)).
    The classic form multiplies the tf part by (k1 + 1); that constant changes no ranking.
    """
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    scores = []
    for doc in corpus:
        score = 0.0
        for term in query:
            df = sum(1 for d in corpus if term in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            score += idf * tf / (tf + K1 * (1 - B + B * len(doc) / avgdl))
        scores.append(score)
    return scores


def random_corpus(rng: random.Random, n_docs: int) -> list[list[str]]:
    vocab = [f"w{i}" for i in range(40)]
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like: common and rare terms
    return [rng.choices(vocab, weights, k=rng.randint(1, 30)) for _ in range(n_docs)]


@pytest.mark.parametrize("seed", range(8))
def test_scores_match_reference(seed: int) -> None:
    rng = random.Random(seed)
    corpus = random_corpus(rng, rng.randint(3, 60))
    ids = [f"c{i}" for i in range(len(corpus))]
    index = BM25Index.build(ids, corpus)
    for _ in range(5):
        query = rng.sample([f"w{i}" for i in range(45)], rng.randint(1, 4))  # w40..w44 never occur
        expected = reference_bm25(corpus, query)
        hits = index.search(query, len(corpus))
        got = {h.id: h.score for h in hits}
        for cid, exp in zip(ids, expected):
            if exp > 0:
                assert got[cid] == pytest.approx(exp, rel=1e-4)
            else:
                assert cid not in got, "documents with score 0 are not hits"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_classic_formula_differs_by_the_constant_factor_only() -> None:
    corpus = [["a", "b", "a"], ["b", "c"], ["c", "d", "e", "a"]]
    index = BM25Index.build(["x", "y", "z"], corpus)
    got = {h.id: h.score for h in index.search(["a", "c"], 3)}
    classic = [s * (K1 + 1) for s in reference_bm25(corpus, ["a", "c"])]
    assert [got["x"] * (K1 + 1), got["y"] * (K1 + 1), got["z"] * (K1 + 1)] == pytest.approx(classic, rel=1e-4)


def test_top_k_and_unknown_tokens() -> None:
    corpus = [["apple", "pie"], ["apple"], ["banana"], ["apple", "apple", "tart"]]
    index = BM25Index.build(["a", "b", "c", "d"], corpus)
    assert [h.id for h in index.search(["apple"], 2)] == [h.id for h in index.search(["apple"], 10)][:2]
    assert len(index.search(["apple"], 10)) == 3
    assert index.search(["apple", "zzz-unknown", ""], 10) == index.search(["apple"], 10)
    assert index.search(["zzz-unknown"], 10) == []
    assert index.search([], 10) == []


def test_empty_index() -> None:
    index = BM25Index.build([], [], generation=4)
    assert len(index) == 0
    assert index.search(["anything"], 5) == []


def test_chunks_without_any_term() -> None:
    """Chunks of only punctuation or stop words have no tokens; bm25s cannot index such a corpus."""
    index = BM25Index.build(["p1", "p2"], [[], []], generation=2)
    assert len(index) == 2
    assert index.search(["x"], 5) == []


def test_save_load_round_trip(tmp_path: Path) -> None:
    corpus = random_corpus(random.Random(42), 30)
    ids = [f"chunk-{i}" for i in range(30)]
    index = BM25Index.build(ids, corpus, generation=17)
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded is not None
    assert loaded.generation == 17
    assert loaded.ids == ids
    for query in (["w0"], ["w3", "w7"], ["w1", "w39", "nope"]):
        assert loaded.search(query, 10) == index.search(query, 10)


@pytest.mark.parametrize("corpus", [[], [[], []]])
def test_save_load_without_terms(tmp_path: Path, corpus: list[list[str]]) -> None:
    ids = [f"c{i}" for i in range(len(corpus))]
    BM25Index.build(ids, corpus, generation=3).save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded is not None and loaded.generation == 3 and loaded.ids == ids
    assert loaded.search(["x"], 3) == []


def test_load_missing_or_incomplete(tmp_path: Path) -> None:
    assert BM25Index.load(tmp_path / "nothing-here") is None
    folder = tmp_path / "bm25"
    BM25Index.build(["a", "b"], [["x"], ["y"]], generation=1).save(folder)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "count": 3}))
    assert BM25Index.load(folder) is None, "ids and meta disagree: incomplete index"
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "ids.npy").unlink()
    assert BM25Index.load(folder) is None, "a damaged index is reported missing, to be rebuilt"
