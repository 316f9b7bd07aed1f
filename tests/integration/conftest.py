"""Fixtures for the graph's integration tests: one tiny e5-embedded knowledge base per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zhiwen import service
from zhiwen.memory import registry
from zhiwen.settings import get_settings

GRAPH_KB_DOCS = {
    "card.md": "# 金卡信用卡\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n",
    "loan.md": "# 安心贷\n\n安心贷是一款个人消费贷款，最高额度为二十万元，期限最长三年。\n",
    "wire.md": (
        "# Wire transfers\n\nInternational wire transfers take three business days. "
        "The fee for an international wire transfer is 15 dollars.\n"
    ),
}


@pytest.fixture(scope="module")
def graph_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(name, ZHIWEN_HOME) of a three-document knowledge base (zh and en), ingested once per module.

    No chat endpoint is configured from the environment: each test points ``Context`` at its own.
    """
    base = tmp_path_factory.mktemp("graph-kb")
    docs, home = base / "docs", base / "home"
    docs.mkdir()
    for name, text in GRAPH_KB_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHIWEN_HOME", str(home))
        for var in ("ZHIWEN_LLM_BASE_URL", "ZHIWEN_LLM_MODEL", "ZHIWEN_CHECKPOINT_URL"):
            mp.delenv(var, raising=False)
        get_settings.cache_clear()
        report = service.ingest("graph", [docs])
        assert report.added == len(GRAPH_KB_DOCS)
        try:
            yield "graph", home
        finally:
            registry.close_all()
            get_settings.cache_clear()
