"""Knowledge bases over HTTP: create, list, delete; upload, list and delete documents; search.

Everything here but search needs an admin key; search needs a key scoped to the knowledge base.
Uploads are stored under the knowledge base's ``uploads/`` folder with a sanitised name (no paths, no
hidden files), then ingested by the server's ingest worker (``jobs.py``) with the same code as
``zhiwen ingest``; a deleted document's uploaded file goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import unicodedata
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from zhiwen import service
from zhiwen.errors import KnowledgeBaseNotFound
from zhiwen.memory.kb import KnowledgeBase, kb_dir, kb_exists, list_kbs
from zhiwen.memory.loaders import SUPPORTED_SUFFIXES
from zhiwen.server.access import Admin, Caller, require_kb
from zhiwen.server.errors import APIError
from zhiwen.server.jobs import QueueFull, QuotaExceeded
from zhiwen.server.public import public_source, public_sources
from zhiwen.server.runtime import runtime_of
from zhiwen.server.schemas import NO_CONTROLS, KnowledgeBaseIn, SearchRequest
from zhiwen.settings import get_settings

__all__ = ["router", "sanitize_filename"]

router = APIRouter(prefix="/v1/kbs", tags=["knowledge bases"])
KbName = Path(min_length=1, max_length=128, pattern=r"^[^/\\\x00]+$")


# File systems limit a name to 255 bytes, not characters (100 CJK characters are 300); the upload is first
# written as ".NAME.upload", so the stored name stays well below that.
_MAX_NAME_BYTES = 200
_MAX_SUFFIX_BYTES = 16  # anything longer after the last dot is not an extension but part of the name


def sanitize_filename(name: str) -> str:
    """A safe file name: last path component, no control characters or lone surrogates, no leading dots,
    extension lower-cased, a stem of at most 100 characters and a name of at most 200 UTF-8 bytes (cut on a
    character boundary)."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[\x00-\x1f\x7f<>:\"|?*\ud800-\udfff]", "_", base).strip().lstrip(".")
    stem, dot, suffix = base.rpartition(".")
    if not dot or len(suffix.encode()) > _MAX_SUFFIX_BYTES:
        stem, suffix = base, ""
    ext = f".{suffix.lower()}" if suffix else ""
    room = _MAX_NAME_BYTES - len(ext.encode())
    # 100 characters as before (a re-upload of a name stored then keeps its document id), and at most the bytes.
    stem = stem[:100].encode()[:room].decode("utf-8", "ignore") or "document"
    return stem + ext


async def _exists(name: str) -> bool:
    """Off the event loop: a file-system or database check (either may stall every stream)."""
    return await asyncio.to_thread(kb_exists, get_settings().kb_root, name)


# The name, not the server, is at fault: a file system that refuses some characters or a name's length.
_NAME_ERRORS = {errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL}


def _save_uploads(folder: FsPath, received: list[tuple[str, bytes]]) -> tuple[list[FsPath], list[str]]:
    """Write the uploaded files under safe names into ``folder``: (saved paths, reasons for the rejected)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[FsPath] = []
    rejected: list[str] = []
    for filename, content in received:
        safe = sanitize_filename(filename)
        if FsPath(safe).suffix.lower() not in SUPPORTED_SUFFIXES:
            rejected.append(f"{safe}: unsupported file type; use {', '.join(SUPPORTED_SUFFIXES)}")
            continue
        target = folder / safe
        if target.resolve().parent != folder.resolve():
            rejected.append(f"{safe}: invalid file name")
            continue
        tmp = target.with_name(f".{safe}.upload")
        try:
            tmp.write_bytes(content)
            tmp.replace(target)
        except OSError as exc:
            if exc.errno not in _NAME_ERRORS:
                raise
            with contextlib.suppress(OSError):  # it may never have been made
                tmp.unlink(missing_ok=True)
            rejected.append(f"{safe}: this file system refuses the name ({exc.strerror}); rename the file")
            continue
        saved.append(target)
    return saved, rejected


@router.get("", summary="Knowledge bases with document and chunk counts")
async def list_knowledge_bases(_: Admin) -> dict[str, Any]:
    rows = await asyncio.to_thread(list_kbs, get_settings().kb_root)
    return {"object": "list", "data": [{"name": n, "documents": d, "chunks": c} for n, d, c in rows]}


@router.post("", status_code=201, summary="Create an empty knowledge base")
async def create_knowledge_base(request: Request, body: KnowledgeBaseIn, caller: Admin) -> dict[str, Any]:
    if await _exists(body.name):
        raise APIError(409, f"knowledge base {body.name!r} already exists", "name", "kb_exists")
    quotas = runtime_of(request).quotas
    await asyncio.to_thread(quotas.claim, "kb", caller.id, body.name)
    try:
        kb = await asyncio.to_thread(service.open_kb, body.name, True)
    except BaseException:
        await asyncio.to_thread(quotas.release, "kb", body.name)
        raise
    stats = await asyncio.to_thread(kb.stats)
    return {k: v for k, v in stats.items() if k != "path"}  # no server paths in responses


@router.delete("/{name}", status_code=204, summary="Delete a knowledge base and all its documents")
async def delete_knowledge_base(request: Request, _: Admin, name: str = KbName) -> Response:
    await require_kb(name)
    try:
        await asyncio.to_thread(service.drop_kb, name, None, False)
    except KnowledgeBaseNotFound as exc:
        raise APIError(404, str(exc), "name", "kb_not_found") from exc
    await asyncio.to_thread(runtime_of(request).quotas.release, "kb", name)
    return Response(status_code=204)


@router.get("/{name}/documents", summary="Documents of a knowledge base")
async def list_documents(_: Admin, name: str = KbName) -> dict[str, Any]:
    await require_kb(name)
    kb = await asyncio.to_thread(service.open_kb, name)  # a first open loads the store and BM25 index
    docs = await asyncio.to_thread(kb.documents)
    flags = await asyncio.to_thread(kb.catalog.flags)
    return {
        "object": "list",
        "data": [
            {
                "id": d.doc_id,
                "source": public_source(d.source),
                "title": d.title,
                "chunks": d.n_chunks,
                "characters": d.n_chars,
                "flags": flags.get(d.doc_id, []),
            }
            for d in docs
        ],
    }


@router.post(
    "/{name}/documents",
    status_code=202,
    summary="Upload documents (.txt .md .html .pdf .jsonl): 202 with an ingest job; ?wait=true: 201 when done",
    response_model=None,
)
async def upload_documents(
    request: Request,
    caller: Admin,
    name: str = KbName,
    # Optional here so that a missing field gets the message below, not pydantic's bare "Field required".
    files: list[UploadFile] = File(
        default_factory=list, description="The documents, each as a multipart form field named 'files'."
    ),
    wait: bool = Query(False, description="Answer when the job is done (201), as scripts expect."),
) -> JSONResponse:
    if not files:
        raise APIError(400, await _no_files(request), "files", "invalid_request")
    await require_kb(name)
    folder = kb_dir(get_settings().kb_root, name) / "uploads"
    received = [(upload.filename or "document", await upload.read()) for upload in files]
    saved, rejected = await asyncio.to_thread(_save_uploads, folder, received)  # file writes: off the loop
    if not saved:
        raise APIError(400, "no supported file in the upload: " + "; ".join(rejected), "files")
    size = sum(len(content) for _, content in received)
    worker = runtime_of(request).jobs
    try:
        job = await asyncio.to_thread(worker.submit, name, caller.id, saved, size)
    except (QueueFull, QuotaExceeded) as exc:
        await asyncio.to_thread(_remove, saved)
        status, code = (503, "ingest_queue_full") if isinstance(exc, QueueFull) else (429, "ingest_quota")
        raise APIError(status, f"{exc}; retry later", "files", code, {"Retry-After": "30"}) from exc
    # Percent-encoded: a header is Latin-1, and a knowledge base named 产品手册 made every upload a 500.
    location = {"Location": f"/v1/kbs/{quote(name, safe='')}/jobs/{job.id}"}
    if not wait:
        return JSONResponse({**job.public(), "rejected": rejected}, status_code=202, headers=location)
    await worker.wait(job)
    if job.status == "failed":
        raise APIError(500, f"ingest job {job.id} failed: {job.error}", "files", "ingest_failed")
    report = job.report
    body = {**{k: report[k] for k in ("added", "replaced", "unchanged", "chunks")}, "job": job.id}
    body |= {"skipped": rejected + report["skipped"], "flagged": report.get("flagged", [])}
    return JSONResponse(body, status_code=201, headers=location)


async def _no_files(request: Request) -> str:
    """What to send instead, with the form fields that came (``-F file=@x`` is a common slip)."""
    message = "no documents in the upload: send each as multipart form field 'files' (curl -F files=@doc.md)"
    got = [repr(key) for key in dict.fromkeys((await request.form()).keys())][:5]  # parsed once, cached
    return f"{message}; this request sent form field(s) {', '.join(got)}" if got else message


@router.get("/{name}/jobs", summary="The knowledge base's ingest jobs, oldest first (the last 100)")
async def list_jobs(request: Request, _: Admin, name: str = KbName) -> dict[str, Any]:
    await require_kb(name)
    jobs = await asyncio.to_thread(runtime_of(request).jobs.of_kb, name)
    return {"object": "list", "data": [j.public() for j in jobs]}


@router.get("/{name}/jobs/{job_id}", summary="One ingest job: status, progress, error, report")
async def get_job(
    request: Request,
    _: Admin,
    name: str = KbName,
    job_id: str = Path(min_length=1, max_length=64, pattern=NO_CONTROLS),
) -> dict[str, Any]:
    await require_kb(name)
    job = await asyncio.to_thread(runtime_of(request).jobs.job, name, job_id)
    if job is None:
        raise APIError(404, f"no ingest job {job_id!r} in {name!r}", "job_id", "job_not_found")
    return job.public()


def _remove(files: list[FsPath]) -> None:
    for f in files:
        f.unlink(missing_ok=True)


@router.delete("/{name}/documents/{doc_id}", status_code=204, summary="Remove a document from both indexes")
async def delete_document(
    _: Admin, name: str = KbName, doc_id: str = Path(min_length=1, max_length=256, pattern=NO_CONTROLS)
) -> Response:
    await require_kb(name)
    kb = await asyncio.to_thread(service.open_kb, name)
    document = await asyncio.to_thread(kb.catalog.document, doc_id)
    if document is None:
        raise APIError(404, f"no document {doc_id!r} in {name!r}", "doc_id", "document_not_found")
    await asyncio.to_thread(kb.delete_document, doc_id, False)
    await asyncio.to_thread(_forget_upload, kb, document.source)
    return Response(status_code=204)


def _forget_upload(kb: KnowledgeBase, source: str) -> None:
    """Delete the uploaded file a deleted document came from, unless another document (a record of the same
    .jsonl) still comes from it. Files ingested from elsewhere (the CLI) are never touched."""
    path = FsPath(source.partition("#")[0])
    uploads = (kb_dir(get_settings().kb_root, kb.name) / "uploads").resolve()
    if path.resolve().parent != uploads:
        return
    if any(d.source.partition("#")[0] == str(path) for d in kb.documents()):
        return
    path.unlink(missing_ok=True)


@router.post("/{name}/search", summary="Search without the LLM (same hits as `zhiwen search --json`)")
async def search(body: SearchRequest, caller: Caller, name: str = KbName) -> dict[str, Any]:
    await require_kb(name, caller)
    hits = await asyncio.to_thread(
        service.search, name, body.query, body.top_k, body.mode, None,
        fusion=body.fusion, bm25_weight=body.bm25_weight, dense_weight=body.dense_weight, rrf_k=body.rrf_k,
    )  # fmt: skip
    return {"object": "list", "data": public_sources(h.to_dict() for h in hits)}
