"""A first ingest that fails leaves no empty knowledge base behind; a base that existed before stays."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cli_run import Cli

from zhiwen import service
from zhiwen.memory import registry
from zhiwen.settings import get_settings

pytestmark = pytest.mark.integration

REFUSING_EMBEDDINGS = {"ZHIWEN_EMBEDDINGS_BASE_URL": "http://127.0.0.1:1/v1", "ZHIWEN_EMBEDDINGS_MODEL": "e5"}
CHROMA_DOWN = {"ZHIWEN_CHROMA_URL": "http://127.0.0.1:1"}


def _make_empty_base(home: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty knowledge base made on purpose, as ``POST /v1/kbs`` makes one (embedded with the refusing
    endpoint's model, so an ingest into it fails at embedding, not at the model check)."""
    with monkeypatch.context() as patch:
        for variable, value in {**REFUSING_EMBEDDINGS, "ZHIWEN_HOME": str(home)}.items():
            patch.setenv(variable, value)
        get_settings.cache_clear()
        try:
            service.open_kb(name, create=True)
        finally:
            registry.close_all()
    get_settings.cache_clear()


def test_a_failed_first_ingest_leaves_no_knowledge_base_but_keeps_one_made_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each left an empty base, listed as if it held something; embnew stayed bound to the refusing model
    # ("this knowledge base was embedded with 'openai:e5'"), and milnew could not be dropped without Milvus.
    fees = tmp_path / "fees.md"
    fees.write_text("# Fees\n\nThe annual fee of the gold card is 300 yuan.\n", encoding="utf-8")
    home = tmp_path / "home"
    cli = Cli(home)
    _make_empty_base(home, "made-before", monkeypatch)
    for kb, env, says in (
        ("embnew", REFUSING_EMBEDDINGS, "zhiwen: error: embeddings endpoint http://127.0.0.1:1/v1"),
        ("milnew", {"ZHIWEN_MILVUS_URI": "http://127.0.0.1:1"}, "zhiwen: error: cannot reach Milvus"),
        ("t9", CHROMA_DOWN, "zhiwen: error: cannot reach the Chroma server"),
        ("made-before", REFUSING_EMBEDDINGS, "zhiwen: error: embeddings endpoint"),  # fails embedding
        ("made-before", CHROMA_DOWN, "zhiwen: error: cannot reach the Chroma server"),  # fails opening
    ):
        proc = cli.run("ingest", str(fees), "--kb", kb, **env)
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr
    assert re.fullmatch(r"made-before\s+0 documents\s+0 chunks\n", cli.kbs()), cli.kbs()
    assert len(os.listdir(home / "kbs")) == 1, "no folder is left of the others"
    again = cli.run("ingest", str(fees), "--kb", "embnew")  # with the configured model, the name is free
    assert again.returncode == 0 and "1 added" in again.stdout, again.stderr
