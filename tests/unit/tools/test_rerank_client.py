"""The rerank client against a real HTTP rerank server on loopback, in each request shape, and its failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zhiwen.testing.scripted_rerank import ScriptedReranker
from zhiwen.tools.rerank import Reranker, RerankFailed

TEXTS = [
    "The branch opens at nine.",
    "The gold card's annual fee is 300 yuan.",
    "Wire transfers take 3 days.",
]


@pytest.fixture
def server() -> Iterator[ScriptedReranker]:
    with ScriptedReranker(favourite="annual fee") as s:
        yield s


@pytest.mark.parametrize(("api", "path", "field"), [("rerank", "/v1/rerank", "documents"),
                                                     ("tei", "/v1/rerank", "texts"),
                                                     ("score", "/v1/score", "text_2")])  # fmt: skip
def test_each_request_shape_is_sent_and_read(
    server: ScriptedReranker, api: str, path: str, field: str
) -> None:
    scores = Reranker(server.base_url, "bge-reranker", api).scores("gold card fee?", TEXTS)
    assert scores == [0.0, 1.0, 0.0]
    sent_path, body = server.requests[-1]
    assert sent_path == path and body[field] == TEXTS
    assert body.get("query", body.get("text_1")) == "gold card fee?"


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda s: setattr(s, "status", 500), "http_error"),
        (lambda s: setattr(s, "garbage", True), "bad_reply"),
        (lambda s: setattr(s, "delay", 1.0), "timeout"),
    ],
)
def test_failures_are_rerank_failed_with_a_kind(server: ScriptedReranker, setup: object, kind: str) -> None:
    setup(server)  # type: ignore[operator]
    with pytest.raises(RerankFailed) as caught:
        Reranker(server.base_url, timeout=0.3).scores("q", TEXTS)
    assert caught.value.kind == kind


def test_an_unreachable_reranker_is_a_connection_failure() -> None:
    with pytest.raises(RerankFailed) as caught:
        Reranker("http://127.0.0.1:9/v1", timeout=1).scores("q", TEXTS)
    assert caught.value.kind == "connection"


def test_a_reply_missing_a_passage_is_refused() -> None:
    with pytest.raises(ValueError, match="2 scores for 3"):
        Reranker._scores(
            {"results": [{"index": 0, "relevance_score": 1}, {"index": 1, "relevance_score": 0}]}, 3
        )
