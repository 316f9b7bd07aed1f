"""Ingestion jobs: uploads are ingested by one worker thread of their own, never on the pool chat turns use.

An upload answers at once with a job (202); the worker ingests jobs one at a time (so one writer per
knowledge base), from a bounded queue, and each key may have only so many bytes waiting. Jobs live in
``ZHIWEN_HOME/jobs.sqlite``, or in the shared database (``ZHIWEN_DATABASE_URL``), where every replica can
report every job. After a restart, a replica runs again the jobs it had queued or was running when cut off
(an ingest is idempotent and commits whole documents, so nothing is half-written); the uploaded files are on
the disk of the replica that received them, so it alone runs them. Each replica's worker records a heartbeat;
a job whose replica has not been heard from for ``STALE_AFTER_S`` is reported ``stalled`` by the others (it
stays stored as it was, and runs when its replica comes back). An uploaded file that did not become a document
is deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from zhiwen.errors import ZhiwenError, first_line
from zhiwen.memory.ingest import IngestReport
from zhiwen.memory.small_store import Sql, open_sql

__all__ = ["IngestWorker", "Job", "JobStore", "QueueFull", "QuotaExceeded"]

log = logging.getLogger("zhiwen.server")
Status = Literal["queued", "running", "done", "failed", "stalled"]
HEARTBEAT_S = 30.0
# Four missed heartbeats: a replica busy ingesting still beats (its own thread), one that is gone does not.
STALE_AFTER_S = 120.0
Ingest = Callable[[str, list[Path], Callable[[int, int], None]], IngestReport]
Documents = Callable[[str], set[str]]


class QueueFull(ZhiwenError):
    """The worker's queue holds as many jobs as it may."""


class QuotaExceeded(ZhiwenError):
    """This key has as many bytes waiting to be ingested as it may."""


@dataclass
class Job:
    """One upload's ingestion. ``files`` are the saved uploads; ``report`` is filled when it is done."""

    id: str
    kb: str
    owner: str
    files: list[str]
    bytes: int
    status: Status = "queued"
    done: int = 0
    total: int = 0
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    replica: str = ""  # the replica holding its files ("": stored before replicas were told apart)

    @property
    def settled(self) -> bool:
        return self.status in ("done", "failed")

    def stalled(self, silent_s: float | None) -> Job:
        """This unsettled job as reported while its replica has been silent ``silent_s`` seconds (None:
        never heard from): ``stalled``, saying whose disk its files are on (the host; no server paths)."""
        host = self.replica.split(":", 1)[0]
        silence = (
            "has never sent a heartbeat"
            if silent_s is None
            else f"has been silent for {silent_s / 60:.0f} min"
        )
        return replace(
            self,
            status="stalled",
            error=f"the replica that received its files (host {host}) {silence}; the job runs when that replica "
            "starts again, or upload the files again through another replica",
        )

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (no server paths: files by name)."""
        return {
            "id": self.id,
            "object": "ingest.job",
            "knowledge_base": self.kb,
            "status": self.status,
            "progress": {"chunks_done": self.done, "chunks_total": self.total},
            "files": [Path(f).name for f in self.files],
            "error": self.error or None,
            "report": self.report or None,
            "created": int(self.created),
            "finished": int(self.finished) if self.finished else None,
        }


def this_replica(home: Path) -> str:
    """What tells this replica's jobs from others' in a shared database: its host and its ``ZHIWEN_HOME``."""
    return f"{socket.gethostname()}:{home}"


class JobStore:
    """Jobs, one row each (the whole job as JSON), on disk or in the shared database."""

    def __init__(self, path: Path, database_url: str | None = None, replica: str = "") -> None:
        self.replica = replica or this_replica(path.parent)
        self._sql: Sql = open_sql(
            path,
            database_url,
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kb TEXT NOT NULL, status TEXT NOT NULL, "
            "created REAL NOT NULL, body TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS job_replicas (replica TEXT PRIMARY KEY, seen REAL NOT NULL)",
            ("jobs", "job_replicas"),
        )

    def close(self) -> None:
        self._sql.close()

    def save(self, job: Job) -> None:
        self._sql.rows(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "body = excluded.body",
            (job.id, job.kb, job.status, job.created, json.dumps(asdict(job), ensure_ascii=False)),
        )

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[Job]:
        rows = self._sql.rows(f"SELECT body FROM jobs WHERE {where} ORDER BY created", args)
        return [Job(**json.loads(r[0])) for r in rows]

    def get(self, kb: str, job_id: str) -> Job | None:
        found = self._rows("kb = ? AND id = ?", (kb, job_id))
        return found[0] if found else None

    def of_kb(self, kb: str, limit: int = 100) -> list[Job]:
        return self._rows("kb = ?", (kb,))[-limit:]

    def beat(self, now: float | None = None) -> None:
        """Record that this replica is alive (its worker calls this every ``HEARTBEAT_S``)."""
        self._sql.rows(
            "INSERT INTO job_replicas VALUES (?, ?) ON CONFLICT (replica) DO UPDATE SET seen = excluded.seen",
            (self.replica, time.time() if now is None else now),
        )

    def silence(self, replica: str) -> float | None:
        """Seconds since ``replica`` last beat (None: never)."""
        found = self._sql.rows("SELECT seen FROM job_replicas WHERE replica = ?", (replica,))
        return max(0.0, time.time() - float(found[0][0])) if found else None

    def as_seen(self, job: Job) -> Job:
        """``job`` as this replica reports it: an unsettled job of another replica that is silent is
        ``stalled`` (nothing is written: when that replica returns, it runs the job and reports it)."""
        if job.settled or job.replica in ("", self.replica):
            return job
        silent = self.silence(job.replica)
        return job if silent is not None and silent < STALE_AFTER_S else job.stalled(silent)

    def unsettled(self) -> list[Job]:
        """This replica's jobs that are queued or were running (another replica's files are not here)."""
        jobs = self._rows("status IN ('queued', 'running')", ())
        return [j for j in jobs if j.replica in ("", self.replica)]


class IngestWorker:
    """Runs jobs one after another in a thread of its own; ``submit`` is safe from any thread."""

    def __init__(
        self,
        store: JobStore,
        ingest: Ingest,
        documents: Documents,
        max_queued: int,
        quota_bytes: int,
        on_settled: Callable[[Job], None] | None = None,
    ) -> None:
        self.store, self._ingest, self._documents = store, ingest, documents
        self._on_settled = on_settled
        self.max_queued, self.quota_bytes = max_queued, quota_bytes
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}  # unsettled jobs, by id
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="zhiwen-ingest", daemon=True)
        self._stopped = threading.Event()
        self._heart = threading.Thread(target=self._beat, name="zhiwen-ingest-heartbeat", daemon=True)

    def start(self) -> None:
        """Pick up the jobs a previous server left unsettled, then start working."""
        for job in self.store.unsettled():
            if job.status == "running":
                log.warning("ingest job %s was cut off by a restart; running it again", job.id)
            job.status = "queued"
            self._enqueue(job)
        self._heart.start()  # first: the worker joins it when it stops
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._queue.put(None)

    def _beat(self) -> None:
        """Tell other replicas this one is alive, so they do not report its jobs ``stalled``."""
        while True:
            try:
                self.store.beat()
            except Exception as exc:  # the database is away: the next beat tries again
                log.warning("ingest heartbeat not recorded: %s", exc)
            if self._stopped.wait(HEARTBEAT_S):
                return

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        self.store.save(job)
        self._queue.put(job)

    def submit(self, kb: str, owner: str, files: list[Path], size: int) -> Job:
        """Queue a job; ``QueueFull`` or ``QuotaExceeded`` (the files are then the caller's to remove)."""
        with self._lock:
            waiting = [j for j in self._jobs.values() if not j.settled]
            if len(waiting) >= self.max_queued:
                raise QueueFull(f"{len(waiting)} ingest jobs are waiting, the most this server queues")
            held = sum(j.bytes for j in waiting if j.owner == owner)
            if held + size > self.quota_bytes:
                raise QuotaExceeded(
                    f"this key has {held} bytes waiting to be ingested; {size} more would pass its quota of "
                    f"{self.quota_bytes} (ZHIWEN_MAX_QUEUED_UPLOAD_BYTES)"
                )
        job = Job(uuid.uuid4().hex[:16], kb, owner, [str(f) for f in files], size, replica=self.store.replica)
        self._enqueue(job)
        return job

    def depth(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if not j.settled)

    def job(self, kb: str, job_id: str) -> Job | None:
        """The live job if it is unsettled, else the stored one."""
        with self._lock:
            live = self._jobs.get(job_id)
        if live is not None and live.kb == kb:
            return live
        stored = self.store.get(kb, job_id)
        return None if stored is None else self.store.as_seen(stored)

    def of_kb(self, kb: str) -> list[Job]:
        """The knowledge base's jobs, oldest first, unsettled ones as they are now."""
        with self._lock:
            live = dict(self._jobs)
        return [live.get(j.id) or self.store.as_seen(j) for j in self.store.of_kb(kb)]

    async def wait(self, job: Job, poll: float = 0.1) -> Job:
        """Wait (without a thread) until ``job`` is settled."""
        while not job.settled:
            await asyncio.sleep(poll)
        return job

    def _run(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                try:
                    self._work(job)
                except Exception:  # a job's failure is recorded in it; the worker goes on
                    log.exception("ingest job %s failed unexpectedly", job.id)
        finally:
            # Stopped, and the jobs queued before the stop are settled: the heartbeat has ended (it waits on
            # the stop), so the store is closed here, by its last user. Left open, a PostgreSQL store's pool
            # was closed by the garbage collector, whose __del__ joins its threads on whatever thread (an
            # event loop's) the collection happened to run.
            self._heart.join()
            self.store.close()

    def _work(self, job: Job) -> None:
        job.status = "running"
        self.store.save(job)
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            job.done, job.total = done, total
            if time.monotonic() - last > 1.0:  # the API reads the live job; the disk copy every second
                last = time.monotonic()
                self.store.save(job)

        files = [Path(f) for f in job.files]
        try:
            missing = [f.name for f in files if not f.exists()]
            if missing:
                raise ZhiwenError(
                    f"uploaded files are gone: {', '.join(missing)} (the knowledge base or the file was deleted)"
                )
            report = self._ingest(job.kb, files, progress)
            job.report = {
                "added": report.added, "replaced": report.replaced, "unchanged": report.unchanged,
                "chunks": report.chunks, "skipped": [_without_folders(s, files) for s in report.skipped],
                "flagged": [_without_folders(s, files) for s in report.flagged],
            }  # fmt: skip
            job.status = "done"
        except Exception as exc:
            job.status, job.error = (
                "failed",
                _without_folders(first_line(exc), files),
            )
            log.warning("ingest job %s into %r failed: %s", job.id, job.kb, exc)
        finally:
            self._remove_files_not_ingested(job, files)
            job.finished = time.time()
            self.store.save(job)
            with self._lock:
                self._jobs.pop(job.id, None)
            if self._on_settled is not None:
                self._on_settled(job)

    def _remove_files_not_ingested(self, job: Job, files: list[Path]) -> None:
        """An upload that did not become a document (unreadable, skipped, or its job failed) is not kept."""
        try:
            sources = self._documents(job.kb)
        except Exception:  # the knowledge base is gone: none of its uploads stay
            sources = set()
        for f in files:
            if str(f) not in sources and not any(s.startswith(f"{f}#") for s in sources):
                f.unlink(missing_ok=True)


def _without_folders(text: str, files: list[Path]) -> str:
    """A message with the uploads' paths shortened to their names."""
    for f in files:
        text = text.replace(str(f), f.name)
    return text
