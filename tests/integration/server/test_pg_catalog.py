"""The knowledge-base catalog and ingest jobs in a real PostgreSQL (``ZHIWEN_DATABASE_URL``).

The same documents give the same catalog and the same hits as the SQLite catalog; a knowledge base made on
disk before the URL was set is moved into the database whole; the write lock holds across connections and
dies with its holder; a dropped and remade base never reuses a generation; jobs are seen by every replica and
run again only by their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fakes import HashEmbedder

from zhiwen.errors import KnowledgeBaseBusy, KnowledgeBaseNotFound, ZhiwenError
from zhiwen.memory.catalog_pg import PostgresCatalogs, close_pools
from zhiwen.memory.catalogs import catalogs_for
from zhiwen.memory.ingest import ingest_paths
from zhiwen.memory.kb import KnowledgeBase, delete_kb, kb_dir, list_kbs
from zhiwen.server.jobs import STALE_AFTER_S, Job, JobStore
from zhiwen.settings import get_settings

pytestmark = pytest.mark.integration

DOCS = {
    "fee.txt": "金卡信用卡的年费为每年三百元人民币，首年免收年费。",
    "lost.txt": "If your debit card is lost or stolen, call the hotline immediately so that we can freeze it.",
    "code.txt": "Error code XQ-7731 means the transaction was declined by the issuing bank's fraud filter.",
    "sub/hours.txt": "Branches are open from nine in the morning until five in the afternoon on weekdays.",
}
QUERIES = ["年费", "card lost hotline", "XQ-7731", "branch opening hours"]


@pytest.fixture
def database(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty set of knowledge-base tables; ``ZHIWEN_DATABASE_URL`` is set only by the tests that want it."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("zhiwen_kb_chunks", "zhiwen_kb_flags", "zhiwen_kb_chunking", "zhiwen_kb_documents",
                      "zhiwen_kb_meta", "zhiwen_kbs", "zhiwen_jobs"):  # fmt: skip
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    close_pools()
    monkeypatch.delenv("ZHIWEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("ZHIWEN_MILVUS_URI", raising=False)
    get_settings.cache_clear()
    yield postgres_url
    close_pools()
    get_settings.cache_clear()


def _use(monkeypatch: pytest.MonkeyPatch, url: str | None) -> None:
    if url:
        monkeypatch.setenv("ZHIWEN_DATABASE_URL", url)
    else:
        monkeypatch.delenv("ZHIWEN_DATABASE_URL", raising=False)
    get_settings.cache_clear()


def _docs(folder: Path) -> Path:
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _hits(kb: KnowledgeBase) -> dict[str, list[tuple[str, str]]]:
    """(source file, text) of the top 3 hits of each query in each mode (ids differ by nothing here)."""
    return {
        f"{mode}:{q}": [(Path(h.metadata["source"]).name, h.text) for h in kb.search(q, top_k=3, mode=mode)]
        for q in QUERIES
        for mode in ("hybrid", "bm25", "dense")
    }


def test_the_database_catalog_gives_what_the_sqlite_one_gives(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = _docs(tmp_path / "docs")
    results = {}
    for engine, url in (("sqlite", None), ("postgres", database)):
        _use(monkeypatch, url)
        kb = KnowledgeBase.open(tmp_path / engine, "银行", HashEmbedder(), create=True)
        report = ingest_paths(kb, [docs])
        assert report.added == len(DOCS), report
        (docs / "lost.txt").write_text(
            DOCS["lost.txt"] + " Cards are frozen within one minute.", encoding="utf-8"
        )
        assert ingest_paths(kb, [docs]).replaced == 1
        (docs / "lost.txt").write_text(DOCS["lost.txt"], encoding="utf-8")
        removed = kb.delete_document(str(docs / "sub"))  # a folder: every document under it
        assert [Path(d.source).name for d in removed] == ["hours.txt"]
        results[engine] = (
            sorted((Path(d.source).name, d.n_chunks, d.sha256) for d in kb.documents()),
            kb.catalog.counts(),
            _hits(kb),
            kb.catalog.chunker_version(kb.documents()[0].doc_id),
        )
        kb.close()
    assert results["postgres"] == results["sqlite"]
    assert not list((tmp_path / "postgres").rglob("kb.sqlite")), "the catalog went to the database"


def test_a_nul_byte_deep_in_a_text_file_does_not_fail_the_database_ingest(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PostgreSQL refuses a NUL in text; one past the loader's binary check (its first 8 KB), or in a title,
    failed the whole ingest, every other file with it."""
    _use(monkeypatch, database)
    docs = _docs(tmp_path / "docs")
    (docs / "log.txt").write_bytes(b"Transfers settle overnight. " * 400 + b"Cut-off is 5 pm.\x00\n")
    (docs / "corpus.jsonl").write_text(  # and in a title, with a lone surrogate: the upload failed whole
        '{"_id": "p1", "title": "Ra\\u0000tes \\ud800", "text": "Savings pay 1.5 percent."}', encoding="utf-8"
    )
    kb = KnowledgeBase.open(tmp_path / "kbs", "nul", HashEmbedder(), create=True)
    report = ingest_paths(kb, [docs])
    assert report.added == len(DOCS) + 2 and not report.skipped, report
    assert any("Cut-off is 5 pm." in h.text for h in kb.search("Cut-off", top_k=3, mode="bm25"))
    kb.close()


def test_a_base_made_on_disk_is_moved_into_the_database_whole(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "kbs"
    kb = KnowledgeBase.open(root, "legacy", HashEmbedder(), create=True)
    ingest_paths(kb, [_docs(tmp_path / "docs")])
    kb.set_hotline("95588")
    before = (_hits(kb), kb.catalog.counts(), kb.catalog.all_tokens(), kb.catalog.flags())
    kb.close()

    _use(monkeypatch, database)
    assert list_kbs(root) == [("legacy", len(DOCS), before[1][1])]
    assert (kb_dir(root, "legacy") / "kb.sqlite.moved").exists()
    assert not (kb_dir(root, "legacy") / "kb.sqlite").exists(), "one catalog from now on: the database's"
    moved = KnowledgeBase.open(root, "legacy", HashEmbedder())
    assert (_hits(moved), moved.catalog.counts(), moved.catalog.all_tokens(), moved.catalog.flags()) == before
    assert moved.hotline() == "95588"
    moved.close()


def test_the_write_lock_holds_across_connections_and_dies_with_its_holder(database: str) -> None:
    replica_a, replica_b = PostgresCatalogs(database), PostgresCatalogs(database)
    with replica_a.write_lock("kb1", "kb1", wait=True):
        with (
            pytest.raises(KnowledgeBaseBusy, match="being written"),
            replica_b.write_lock("kb1", "kb1", wait=False),
        ):
            pass
        with replica_b.write_lock("kb2", "kb2", wait=False):  # another knowledge base: its own lock
            pass
        # The holder's connection dies (as with a replica killed by SIGKILL): the server frees the lock.
        with psycopg.connect(database, autocommit=True) as admin:
            (held_by,) = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            ).fetchone() or (None,)
            assert held_by is not None, "the holder's advisory lock is visible to another session"
            admin.execute("SELECT pg_terminate_backend(%s)", (held_by,))
            # pg_terminate_backend only signals the backend; under load it exits a moment later.
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (held_by,)).fetchone():
                assert time.monotonic() < deadline, "the terminated backend did not exit within 10 s"
                time.sleep(0.05)
        with replica_b.write_lock("kb1", "kb1", wait=False):
            pass


def test_a_dropped_base_is_gone_and_a_new_one_of_its_name_starts_a_new_generation(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use(monkeypatch, database)
    root = tmp_path / "kbs"
    kb = KnowledgeBase.open(root, "again", HashEmbedder(), create=True)
    ingest_paths(kb, [_docs(tmp_path / "docs")])
    old_generation = kb.catalog.generation
    kb.close()
    delete_kb(root, "again")
    assert list_kbs(root) == []
    with pytest.raises(KnowledgeBaseNotFound):
        KnowledgeBase.open(root, "again", HashEmbedder())
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM zhiwen_kb_chunks").fetchone() == (0,)
    remade = KnowledgeBase.open(root, "again", HashEmbedder(), create=True)
    # A replica's BM25 index left from the dropped base records its generation: it must never match.
    assert remade.catalog.generation > old_generation
    assert remade.search("年费", mode="bm25") == []
    remade.close()


def test_listing_reads_without_writing_and_never_brings_back_a_dropped_base(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use(monkeypatch, database)
    root = tmp_path / "kbs"
    KnowledgeBase.open(root, "listed", HashEmbedder(), create=True).close()
    home = catalogs_for(root)
    names = home.names()
    assert [n for _, n in names] == ["listed"]
    with psycopg.connect(database, autocommit=True) as conn:
        # Counts every row offered to zhiwen_kbs, "ON CONFLICT DO NOTHING" ones included (a BEFORE trigger
        # fires for each).
        conn.execute("CREATE TABLE offered (n int)")
        conn.execute(
            "CREATE FUNCTION count_offered() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO offered VALUES (1); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER offered BEFORE INSERT ON zhiwen_kbs FOR EACH ROW EXECUTE FUNCTION count_offered()"
        )
        try:
            assert list_kbs(root) == [("listed", 0, 0)]
            delete_kb(root, "listed")  # another replica drops it between the listing's two reads
            with pytest.raises(KnowledgeBaseNotFound):
                home.open(names[0][0], "listed", create=False)
            assert list_kbs(root) == []
            assert conn.execute("SELECT COUNT(*) FROM zhiwen_kbs").fetchone() == (0,)
            assert conn.execute("SELECT COUNT(*) FROM offered").fetchone() == (0,)  # nothing was written
        finally:
            conn.execute("DROP TABLE offered")
            conn.execute("DROP FUNCTION count_offered() CASCADE")


def test_an_unreachable_database_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    close_pools()
    _use(monkeypatch, "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(ZhiwenError, match=r"cannot reach the database at postgresql://") as caught:
        KnowledgeBase.open(tmp_path / "kbs", "x", HashEmbedder(), create=True)
    assert "\n" not in str(caught.value)
    close_pools()
    get_settings.cache_clear()


def test_jobs_are_seen_by_every_replica_and_resumed_only_by_their_own(database: str, tmp_path: Path) -> None:
    one = JobStore(tmp_path / "one" / "jobs.sqlite", database, replica="one")
    two = JobStore(tmp_path / "two" / "jobs.sqlite", database, replica="two")
    try:
        job = Job("j1", "bank", "key", ["/uploads/a.txt"], 10, replica="one")
        one.save(job)
        job.status, job.done, job.total = "running", 3, 9
        one.save(job)
        seen = two.get("bank", "j1")
        assert seen is not None and (seen.status, seen.done, seen.total, seen.replica) == (
            "running",
            3,
            9,
            "one",
        )
        assert [j.id for j in one.unsettled()] == ["j1"]
        assert two.unsettled() == [], "another replica's files are not here"
        assert not (tmp_path / "one" / "jobs.sqlite").exists()
    finally:
        one.close()
        two.close()


def test_a_job_whose_replica_went_silent_is_reported_stalled_by_the_others(
    database: str, tmp_path: Path
) -> None:
    one = JobStore(tmp_path / "one" / "jobs.sqlite", database, replica="host-one:/data")
    two = JobStore(tmp_path / "two" / "jobs.sqlite", database, replica="host-two:/data")
    try:
        one.save(
            Job(
                "j1",
                "bank",
                "key",
                ["/data/kbs/bank/uploads/a.txt"],
                10,
                status="running",
                replica=one.replica,
            )
        )
        one.beat()
        [seen] = two.of_kb("bank")
        assert two.as_seen(seen).status == "running"
        one.beat(now=time.time() - STALE_AFTER_S - 1)  # its last heartbeat, long ago: SIGKILLed, say
        assert two.as_seen(seen).status == "stalled"
        assert "host-one" in two.as_seen(seen).public()["error"]
        assert one.as_seen(seen).status == "running"
    finally:
        one.close()
        two.close()


def test_kb_list_with_shared_catalogs_needs_no_folder(
    database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """It made ZHIWEN_HOME/kbs (failing on a read-only home) although the catalogs are in the database."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
    env |= {"ZHIWEN_HOME": str(home), "ZHIWEN_DATABASE_URL": database}
    empty = subprocess.run([sys.executable, "-m", "zhiwen.cli", "kb", "list"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert empty.returncode == 0, empty.stderr
    assert "no knowledge bases yet in the shared database" in empty.stdout, empty.stdout
    assert not (home / "kbs").exists()
    _use(monkeypatch, database)  # another replica makes one, in the database
    KnowledgeBase.open(tmp_path / "elsewhere", "shared-one", HashEmbedder(), create=True).close()
    listed = subprocess.run([sys.executable, "-m", "zhiwen.cli", "kb", "list"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert listed.returncode == 0 and listed.stdout.startswith("shared-one\t0 documents"), listed
