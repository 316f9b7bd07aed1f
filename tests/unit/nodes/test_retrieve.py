"""retrieve: numbered sources from the knowledge base, with the retry strategy changing how many."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import HashEmbedder
from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import State
from zhiwen.memory.ingest import ingest_paths
from zhiwen.memory.kb import Hit, KnowledgeBase
from zhiwen.nodes import retrieve as retrieve_module
from zhiwen.nodes.retrieve import retrieve, to_sources

DOCS = {
    "card.md": "# 金卡信用卡\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n",
    "wire.md": "# Wire transfers\n\nInternational wire transfers take three business days.\n",
    "loan.md": "# 安心贷\n\n安心贷是一款个人消费贷款，最高额度为二十万元。\n",
}


class RecordingKB:
    """Stands in for a KnowledgeBase: records each search and returns ``top_k`` made-up hits."""

    def __init__(self) -> None:
        self.searches: list[dict[str, Any]] = []

    def search(self, query: str, **kwargs: Any) -> list[Hit]:
        self.searches.append({"query": query, **kwargs})
        if kwargs.get("timings") is not None:
            kwargs["timings"]["bm25"] = 0.002  # what a real search says of each leg it ran
        return [
            Hit(f"c{i}", f"d{i}", f"text {i}", 1.0 / i, {"bm25": {"rank": float(i), "score": 1.0}})
            for i in range(1, kwargs["top_k"] + 1)
        ]


def _state(query: str, strategy: str = "default") -> State:
    intent = {"label": "question", "language": "en", "query": query, "reason": "", "method": "rules"}
    return {"messages": [], "intent": intent, "strategy": strategy}  # type: ignore[typeddict-item]


def _run(state: State, ctx: Context) -> dict[str, Any]:
    return asyncio.run(retrieve(state, Runtime(context=ctx)))


@pytest.fixture
def recording_kb(monkeypatch: pytest.MonkeyPatch) -> RecordingKB:
    kb = RecordingKB()
    opened: list[str] = []
    monkeypatch.setattr(retrieve_module, "open_kb", lambda name: opened.append(name) or kb)
    kb.opened = opened  # type: ignore[attr-defined]
    return kb


@pytest.fixture
def hash_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeBase]:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.open(tmp_path / "kbs", "t", HashEmbedder(), create=True)
    ingest_paths(kb, [docs])
    monkeypatch.setattr(retrieve_module, "open_kb", lambda name: kb)
    yield kb
    kb.close()


@pytest.mark.parametrize(("strategy", "top_k"), [("default", 3), ("best_chunk", 1), ("wider", 6)])
def test_strategy_sets_how_many_chunks(recording_kb: RecordingKB, strategy: str, top_k: int) -> None:
    out = _run(_state("annual fee", strategy), Context(kb="bank", top_k=3))
    assert [s["n"] for s in out["sources"]] == list(range(1, top_k + 1))
    (search,) = recording_kb.searches
    assert search["top_k"] == top_k
    assert recording_kb.opened == ["bank"]  # type: ignore[attr-defined]


def test_passes_the_standalone_query_and_retrieval_settings(recording_kb: RecordingKB) -> None:
    ctx = Context(retrieval_mode="bm25", bm25_weight=2.0, dense_weight=0.5, rrf_k=10, fusion="rrf", top_k=4)
    out = _run(_state("金卡信用卡首年免年费吗？"), ctx)
    assert recording_kb.searches == [
        {
            "query": "金卡信用卡首年免年费吗？",
            "top_k": 4,
            "mode": "bm25",
            "weights": {"bm25": 2.0, "dense": 0.5},
            "rrf_k": 10,
            "timings": {"bm25": 0.002},
            "fusion": "rrf",
        }
    ]
    assert set(out["timings"]) == {"retrieval", "retrieval_bm25"} and out["timings"]["retrieval"] >= 0
    assert out["timings"]["retrieval_bm25"] == 0.002, "each leg's time reaches the state (and /metrics)"


def test_to_sources_numbers_hits_and_keeps_provenance() -> None:
    hits = [
        Hit(
            "a",
            "doc-a",
            "text a",
            0.5,
            {"dense": {"rank": 1.0, "score": 0.9}},
            {"source": "/a.md", "heading": "A"},
        ),
        Hit("b", "doc-b", "text b", 0.25, {}, {"source": "/b.md", "title": "B title"}),
        Hit("c", "doc-c", "text c", 0.1),
    ]
    sources = to_sources(hits)
    assert [s["n"] for s in sources] == [1, 2, 3]
    assert sources[0] == {
        "n": 1,
        "id": "a",
        "doc_id": "doc-a",
        "text": "text a",
        "score": 0.5,
        "source": "/a.md",
        "title": "A",
        "metadata": {"source": "/a.md", "heading": "A", "legs": {"dense": {"rank": 1.0, "score": 0.9}}},
    }
    assert sources[1]["title"] == "B title"
    assert (sources[2]["source"], sources[2]["title"]) == ("", "")


def test_real_index_finds_the_matching_document(hash_kb: KnowledgeBase) -> None:
    out = _run(_state("金卡信用卡的年费"), Context(top_k=2))
    assert len(out["sources"]) == 2
    top = out["sources"][0]
    assert top["source"].endswith("card.md")
    assert "三百元" in top["text"]
    assert set(top["metadata"]["legs"]) == {"bm25", "dense"}  # hybrid: both legs ranked it
    assert top["metadata"]["legs"]["bm25"]["rank"] == 1.0
