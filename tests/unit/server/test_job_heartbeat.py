"""Jobs of a replica that stopped beating are reported ``stalled`` by the others, and only by them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from zhiwen.memory.ingest import IngestReport
from zhiwen.server import jobs as jobs_module
from zhiwen.server.jobs import STALE_AFTER_S, IngestWorker, Job, JobStore


def _pair(tmp_path: Path) -> tuple[JobStore, JobStore]:
    """Two replicas' views of one store (a shared SQLite file stands in for the shared database here)."""
    path = tmp_path / "jobs.sqlite"
    return JobStore(path, replica="alpha:/srv/zhiwen"), JobStore(path, replica="beta:/srv/zhiwen")


def test_a_silent_replicas_job_is_stalled_for_the_others_and_unchanged_in_the_store(tmp_path: Path) -> None:
    alpha, beta = _pair(tmp_path)
    job = Job(
        "j1",
        "bank",
        "key",
        ["/srv/zhiwen/kbs/bank/uploads/a.txt"],
        10,
        status="running",
        replica=alpha.replica,
    )
    alpha.save(job)
    alpha.beat()
    assert beta.as_seen(job).status == "running", "a replica heard from just now is alive"
    alpha.beat(now=time.time() - STALE_AFTER_S - 60)
    seen = beta.as_seen(job)
    assert seen.status == "stalled"
    assert "host alpha" in seen.error and "has been silent for 3 min" in seen.error
    assert "/srv/zhiwen" not in seen.error, "no server paths in what the API shows"
    assert alpha.as_seen(job).status == "running", "a replica never calls its own jobs stalled"
    stored = beta.get("bank", "j1")
    assert stored is not None and stored.status == "running", "reporting writes nothing"
    for settled in ("done", "failed"):
        assert (
            beta.as_seen(Job("j2", "bank", "key", [], 1, status=settled, replica=alpha.replica)).status
            == settled
        )


def test_a_replica_that_never_beat_is_stalled_and_legacy_jobs_are_left_alone(tmp_path: Path) -> None:
    _, beta = _pair(tmp_path)
    orphan = Job("j1", "bank", "key", [], 1, status="queued", replica="gamma:/srv/zhiwen")
    assert "never sent a heartbeat" in beta.as_seen(orphan).error
    legacy = Job("j2", "bank", "key", [], 1, status="queued", replica="")
    assert beta.as_seen(legacy).status == "queued"


def test_the_worker_beats_while_it_runs_and_reports_others_stalled_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "HEARTBEAT_S", 0.05)
    alpha, beta = _pair(tmp_path)
    alpha.save(Job("j1", "bank", "key", [], 1, status="running", replica=alpha.replica))
    alpha.beat(now=0.0)  # long ago

    def ingest(kb: str, files: list[Path], progress: object) -> IngestReport:
        raise AssertionError("beta must not run alpha's job")

    worker = IngestWorker(beta, ingest, lambda kb: set(), max_queued=4, quota_bytes=1000)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while beta.silence(beta.replica) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        silence = beta.silence(beta.replica)
        assert silence is not None and silence < 5, "the worker's heartbeat is recorded"
        reported = worker.job("bank", "j1")
        assert reported is not None and reported.status == "stalled"
        assert [j.status for j in worker.of_kb("bank")] == ["stalled"]
        assert reported.public()["status"] == "stalled" and reported.public()["error"]
    finally:
        worker.stop()
        alpha.close()
        beta.close()


def test_a_stopped_worker_settles_its_queue_then_closes_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store (a PostgreSQL pool, with a shared database) is closed by the worker once it has stopped,
    not left to the garbage collector; jobs queued before the stop still run first."""
    monkeypatch.setattr(jobs_module, "HEARTBEAT_S", 0.05)
    store = JobStore(tmp_path / "jobs.sqlite", replica="alpha:/srv")
    closed: list[bool] = []
    real_close = store.close
    monkeypatch.setattr(store, "close", lambda: (closed.append(True), real_close())[-1])
    upload = tmp_path / "a.txt"
    upload.write_text("金卡年费三百元。", encoding="utf-8")
    ran: list[str] = []

    def ingest(kb: str, files: list[Path], progress: object) -> IngestReport:
        ran.append(kb)
        return IngestReport()

    worker = IngestWorker(store, ingest, lambda kb: set(), max_queued=4, quota_bytes=1000)
    store.save(Job("j1", "bank", "key", [str(upload)], 1, status="queued", replica=store.replica))
    worker.start()
    worker.stop()
    worker._thread.join(10)
    assert not worker._thread.is_alive() and not worker._heart.is_alive()
    assert ran == ["bank"], "the job queued before the stop ran"
    assert closed == [True], "the store was closed once, by the worker"
