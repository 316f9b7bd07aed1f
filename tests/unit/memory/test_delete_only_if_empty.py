"""``delete_kb(only_if_empty=True)``, which a failed first ingest uses, never deletes a base holding documents."""

from __future__ import annotations

from pathlib import Path

from fakes import HashEmbedder

from zhiwen.memory.documents import Document
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import KnowledgeBase, delete_kb, kb_exists


def test_a_base_holding_documents_is_kept_and_an_empty_one_deleted(tmp_path: Path) -> None:
    full = KnowledgeBase.open(tmp_path, "full", HashEmbedder(), create=True)
    ingest_documents(full, [Document(source="/docs/fees.txt", text="The annual fee is 300 yuan.")])
    full.close()
    KnowledgeBase.open(tmp_path, "empty", HashEmbedder(), create=True).close()
    assert delete_kb(tmp_path, "full", only_if_empty=True) is False
    assert delete_kb(tmp_path, "empty", only_if_empty=True) is True
    assert kb_exists(tmp_path, "full") and not kb_exists(tmp_path, "empty")
    reopened = KnowledgeBase.open(tmp_path, "full", HashEmbedder())
    assert [d.source for d in reopened.documents()] == ["/docs/fees.txt"]
    reopened.close()
