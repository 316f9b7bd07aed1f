"""The knowledge-base API: create, list, upload (sanitised names, type and size limits), search, delete."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen import service
from zhiwen.memory.kb import kb_dir
from zhiwen.server.app import create_app
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

MAX_UPLOAD = 4096
KB = "uploads-kb"
LOAN = "Personal loans have a yearly interest rate of 4.5 percent. Repayment terms run up to five years."
SAFE = "Safe deposit boxes are rented per year. A small box costs 200 yuan a year."


@pytest.fixture(scope="module")
def api(env: Env, kit: type[Kit]) -> Iterator[httpx.Client]:
    settings = kit.open_settings(max_upload_bytes=MAX_UPLOAD)
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=120) as c,
    ):
        yield c


def _upload(api: httpx.Client, kb: str, *files: tuple[str, bytes, str]) -> httpx.Response:
    return api.post(f"/v1/kbs/{kb}/documents?wait=true", files=[("files", f) for f in files])


def _raw_upload(api: httpx.Client, kb: str, filename: str, content: bytes) -> httpx.Response:
    """A multipart upload with the file name exactly as given (httpx would percent-encode control bytes)."""
    boundary = "zhiwen-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return api.post(f"/v1/kbs/{kb}/documents?wait=true", content=body, headers=headers)


def _search(api: httpx.Client, kb: str, query: str, **options: Any) -> list[dict[str, Any]]:
    resp = api.post(f"/v1/kbs/{kb}/search", json={"query": query, **options})
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def _documents(api: httpx.Client, kb: str) -> list[dict[str, Any]]:
    resp = api.get(f"/v1/kbs/{kb}/documents")
    assert resp.status_code == 200, resp.text
    docs: list[dict[str, Any]] = resp.json()["data"]
    return docs


def test_list_shows_the_module_kb(api: httpx.Client, kit: type[Kit]) -> None:
    data = api.get("/v1/kbs").json()["data"]
    bank = next(k for k in data if k["name"] == kit.KB)
    assert bank["documents"] == len(kit.DOCS) and bank["chunks"] >= len(kit.DOCS)


def test_search_matches_service_search(api: httpx.Client, kit: type[Kit]) -> None:
    for query, options in [
        ("gold card annual fee", {}),
        ("金卡年费是多少", {"top_k": 2}),
        ("wire transfer", {"mode": "bm25"}),
        ("how long does a transfer take", {"mode": "dense", "top_k": 3}),
        ("fee", {"bm25_weight": 2.0, "dense_weight": 0.5, "rrf_k": 10}),
    ]:
        http = _search(api, kit.KB, query, **options)
        direct = service.search(
            kit.KB, query, options.get("top_k", 10), options.get("mode", "hybrid"),
            **{k: v for k, v in options.items() if k in ("bm25_weight", "dense_weight", "rrf_k")},
        )  # fmt: skip
        assert [h["id"] for h in http] == [h.id for h in direct], query
        assert [h["score"] for h in http] == pytest.approx([h.score for h in direct])
        assert [h["text"] for h in http] == [h.text for h in direct]
        assert http, query
    top = _search(api, kit.KB, "gold card annual fee")[0]
    assert "300 yuan" in top["text"]


def test_kb_lifecycle(api: httpx.Client, kit: type[Kit]) -> None:
    created = api.post("/v1/kbs", json={"name": KB})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == KB and created.json()["documents"] == 0
    kit.assert_error(api.post("/v1/kbs", json={"name": KB}), 409, "already exists")
    assert KB in [k["name"] for k in api.get("/v1/kbs").json()["data"]]
    assert KB in [m["id"] for m in api.get("/v1/models").json()["data"]]

    up = _upload(api, KB, ("loans.md", f"# Loans\n\n{LOAN}\n".encode(), "text/markdown"),
                 ("boxes.txt", SAFE.encode(), "text/plain"))  # fmt: skip
    assert up.status_code == 201, up.text
    assert up.json()["added"] == 2 and up.json()["chunks"] >= 2 and up.json()["skipped"] == []
    again = _upload(api, KB, ("boxes.txt", SAFE.encode(), "text/plain"))
    assert again.status_code == 201 and again.json()["unchanged"] == 1 and again.json()["added"] == 0

    docs = {d["source"].rsplit("/", 1)[-1]: d for d in _documents(api, KB)}
    assert set(docs) == {"loans.md", "boxes.txt"}
    assert docs["loans.md"]["chunks"] >= 1 and docs["loans.md"]["characters"] >= len(LOAN)

    hits = _search(api, KB, "interest rate of personal loans")
    assert hits[0]["doc_id"] == docs["loans.md"]["id"]
    assert api.delete(f"/v1/kbs/{KB}/documents/{docs['loans.md']['id']}").status_code == 204
    kit.assert_error(api.delete(f"/v1/kbs/{KB}/documents/{docs['loans.md']['id']}"), 404, "no document")
    assert all(
        h["doc_id"] != docs["loans.md"]["id"] for h in _search(api, KB, "interest rate of personal loans")
    )
    assert [d["id"] for d in _documents(api, KB)] == [docs["boxes.txt"]["id"]]

    assert api.delete(f"/v1/kbs/{KB}").status_code == 204
    assert KB not in [k["name"] for k in api.get("/v1/kbs").json()["data"]]
    assert not kb_dir(get_settings().kb_root, KB).exists()
    kit.assert_error(api.delete(f"/v1/kbs/{KB}"), 404, KB)


def test_a_knowledge_base_named_in_chinese_takes_uploads_and_its_job_location_works(
    api: httpx.Client,
) -> None:
    name = "产品手册"
    assert api.post("/v1/kbs", json={"name": name}).status_code == 201
    for wait in ("true", "false"):
        up = api.post(f"/v1/kbs/{name}/documents?wait={wait}",
                      files=[("files", (f"fees-{wait}.txt", f"年费三百元 {wait}".encode(), "text/plain"))])  # fmt: skip
        assert up.status_code == (201 if wait == "true" else 202), up.text
        deadline = time.monotonic() + 60
        while (job := api.get(up.headers["location"])).json().get("status") != "done":  # percent-encoded
            assert job.status_code == 200 and time.monotonic() < deadline, job.text
            time.sleep(0.1)
        assert job.json()["knowledge_base"] == name
    assert api.delete(f"/v1/kbs/{name}").status_code == 204


@pytest.mark.parametrize(
    ("filename", "stored"),
    [("../../etc/passwd.txt", "passwd.txt"), ("..\\..\\evil.md", "evil.md"), (".hidden.md", "hidden.md"),
     ("/abs/path/notes.TXT", "notes.txt"), ("bad\x01name.md", "bad_name.md"),
     # over 255 bytes, the file systems' limit: cut to 200 bytes on a character boundary, extension kept
     pytest.param("名" * 90 + ".md", "名" * 65 + ".md", id="270-byte-chinese"),
     pytest.param("😀" * 80 + ".MD", "😀" * 49 + ".md", id="320-byte-emoji"),
     # ASCII names are cut at 100 characters as they always were: a re-upload keeps its document id
     pytest.param("a" * 150 + ".md", "a" * 100 + ".md", id="150-ascii-characters")],
)  # fmt: skip
def test_upload_names_are_sanitised(api: httpx.Client, filename: str, stored: str) -> None:
    kb = "sanitise-kb"
    api.post("/v1/kbs", json={"name": kb})
    resp = _raw_upload(api, kb, filename, LOAN.encode())
    assert resp.status_code == 201, resp.text
    home = get_settings().home
    uploads = kb_dir(get_settings().kb_root, kb) / "uploads"
    assert (uploads / stored).read_text(encoding="utf-8") == LOAN
    assert [p.name for p in uploads.iterdir()] == [stored]  # nothing else, no temp files left
    outside = [p for p in home.parent.rglob("*") if p.is_file() and p.read_bytes() == LOAN.encode()]
    assert outside == [uploads / stored]
    sources = [d["source"] for d in _documents(api, kb)]
    assert sources == [stored], "the uploaded name, never a server path"
    assert api.delete(f"/v1/kbs/{kb}").status_code == 204


def test_upload_rejects_unsupported_types(api: httpx.Client, kit: type[Kit]) -> None:
    api.post("/v1/kbs", json={"name": "types-kb"})
    error = kit.assert_error(
        _upload(api, "types-kb", ("tool.exe", b"MZ\x90\x00", "application/octet-stream")), 400, "unsupported"
    )
    assert error["param"] == "files"
    mixed = _upload(
        api, "types-kb", ("ok.txt", SAFE.encode(), "text/plain"), ("x.docx", b"PK", "application/zip")
    )
    assert mixed.status_code == 201
    assert mixed.json()["added"] == 1 and "x.docx: unsupported file type" in mixed.json()["skipped"][0]
    kit.assert_error(api.post("/v1/kbs/types-kb/documents", data={"x": "y"}), 400, "files")
    assert api.delete("/v1/kbs/types-kb").status_code == 204


@pytest.mark.parametrize(
    "sent",
    [{"files": [("file", ("a.md", LOAN.encode(), "text/markdown"))]}, {"json": {"files": ["a.md"]}}, {}],
    ids=["field-named-file", "json-body", "no-body"],
)
def test_an_upload_without_the_files_field_says_what_to_send(
    api: httpx.Client, kit: type[Kit], sent: dict[str, Any]
) -> None:
    resp = api.post(f"/v1/kbs/{kit.KB}/documents?wait=true", **sent)
    error = kit.assert_error(resp, 400, "multipart form field 'files'")
    assert error["param"] == "files"
    if "files" in sent:
        assert "'file'" in error["message"], "the field that was sent instead"


def test_upload_over_limit_is_413(api: httpx.Client, kit: type[Kit]) -> None:
    api.post("/v1/kbs", json={"name": "big-kb"})
    resp = _upload(api, "big-kb", ("big.txt", b"word " * (MAX_UPLOAD // 4), "text/plain"))
    kit.assert_error(resp, 413, f"larger than {MAX_UPLOAD} bytes")
    assert _documents(api, "big-kb") == []
    assert api.delete("/v1/kbs/big-kb").status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/v1/kbs/nope/documents", None), ("POST", "/v1/kbs/nope/search", {"query": "x"}),
     ("DELETE", "/v1/kbs/nope", None), ("DELETE", "/v1/kbs/nope/documents/abc", None)],
)  # fmt: skip
def test_unknown_kb_is_404(api: httpx.Client, kit: type[Kit], method: str, path: str, body: Any) -> None:
    error = kit.assert_error(api.request(method, path, json=body), 404, "nope")
    assert error["type"] == "not_found_error"


def test_upload_to_unknown_kb_is_404(api: httpx.Client, kit: type[Kit]) -> None:
    kit.assert_error(_upload(api, "nope", ("a.txt", b"hello there", "text/plain")), 404, "nope")
    assert not kb_dir(get_settings().kb_root, "nope").exists()


@pytest.mark.parametrize("name", ["", "a/b", "x" * 129])
def test_bad_kb_names_are_400(api: httpx.Client, kit: type[Kit], name: str) -> None:
    kit.assert_error(api.post("/v1/kbs", json={"name": name}), 400, "name")


@pytest.mark.parametrize("name", ["a..b", "trailing.", ".hidden", " spaced"])
def test_names_a_store_would_reject_are_refused_at_creation(
    api: httpx.Client, kit: type[Kit], name: str
) -> None:
    kit.assert_error(api.post("/v1/kbs", json={"name": name}), 400, "knowledge base name", "refused")
    assert name not in [k["name"] for k in api.get("/v1/kbs").json()["data"]]


def test_bad_search_is_400(api: httpx.Client, kit: type[Kit]) -> None:
    kit.assert_error(api.post(f"/v1/kbs/{kit.KB}/search", json={"query": ""}), 400, "query")
    kit.assert_error(api.post(f"/v1/kbs/{kit.KB}/search", json={"query": "x", "mode": "magic"}), 400, "mode")
    kit.assert_error(api.post(f"/v1/kbs/{kit.KB}/search", json={"query": "x", "top_k": 0}), 400, "top_k")


def test_while_another_ingest_runs_uploads_queue_and_deletes_are_409(
    api: httpx.Client, kit: type[Kit]
) -> None:
    import fcntl

    kb = "busy-kb"
    assert api.post("/v1/kbs", json={"name": kb}).status_code == 201
    assert _upload(api, kb, ("safe.txt", SAFE.encode(), "text/plain")).status_code == 201
    doc_id = _documents(api, kb)[0]["id"]
    with open(kb_dir(get_settings().kb_root, kb) / "write.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process's ingest holds the knowledge base
        try:
            queued = api.post(
                f"/v1/kbs/{kb}/documents", files=[("files", ("loan.md", LOAN.encode(), "text/markdown"))]
            )
            assert queued.status_code == 202, queued.text
            job = queued.json()
            assert job["status"] in ("queued", "running") and queued.headers["location"].endswith(job["id"])
            for resp in (api.delete(f"/v1/kbs/{kb}/documents/{doc_id}"), api.delete(f"/v1/kbs/{kb}")):
                error = kit.assert_error(resp, 409, "ingest is running")
                assert error["code"] == "kb_busy" and resp.headers["retry-after"] == "5"
            time.sleep(1.0)
            assert api.get(f"/v1/kbs/{kb}/jobs/{job['id']}").json()["status"] == "running", (
                "it waits its turn"
            )
            assert _search(api, kb, "safe deposit box"), "searches go on meanwhile"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    deadline = time.monotonic() + 120
    while (state := api.get(f"/v1/kbs/{kb}/jobs/{job['id']}").json())["status"] != "done":
        assert state["status"] != "failed" and time.monotonic() < deadline, state
        time.sleep(0.2)
    assert (
        state["report"]["added"] == 1
        and state["progress"]["chunks_done"] == state["progress"]["chunks_total"]
    )
    assert sorted(d["source"] for d in _documents(api, kb)) == ["loan.md", "safe.txt"]
    assert api.delete(f"/v1/kbs/{kb}").status_code == 204
