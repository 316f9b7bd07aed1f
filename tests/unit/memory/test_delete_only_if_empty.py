"""``delete_kb(only_if_empty=True)``, which a failed first ingest uses, never deletes a base holding documents."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from fakes import HashEmbedder

from zhiwen.errors import KnowledgeBaseNotFound
from zhiwen.memory.catalogs import catalogs_for
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


def test_a_writer_that_waited_while_the_base_was_dropped_writes_nothing(tmp_path: Path) -> None:
    """The race a failed first ingest's clean-up could lose: another ingest waits for the write lock, the
    empty base is dropped under it, and the waiter must not go on into deleted files."""
    kb = KnowledgeBase.open(tmp_path, "raced", HashEmbedder(), create=True)
    home = catalogs_for(tmp_path)
    outcome: list[BaseException | str] = []

    def waiter() -> None:
        try:
            with kb.writing():
                outcome.append("wrote")
        except BaseException as exc:
            outcome.append(exc)

    with home.write_lock(kb.path.name, "raced", wait=True):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)  # the waiter is blocked on the lock now
        assert outcome == []
        home.drop(kb.path.name)
        shutil.rmtree(kb.path)
    thread.join(10)
    kb.close()
    assert len(outcome) == 1 and isinstance(outcome[0], KnowledgeBaseNotFound), outcome
    assert "was deleted while this write waited" in str(outcome[0])
