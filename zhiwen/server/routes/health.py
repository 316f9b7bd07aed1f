"""Probes and metrics: /health (summary), /live (process up), /ready (model answers, store open), /metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zhiwen import __version__
from zhiwen.server.runtime import runtime_of
from zhiwen.settings import get_settings
from zhiwen.tools.llm_server import resolve_endpoint

__all__ = ["router"]

router = APIRouter(tags=["health"])
log = logging.getLogger("zhiwen.server")


async def _model_answers() -> tuple[bool, str]:
    settings = get_settings()
    try:
        endpoint = await asyncio.to_thread(resolve_endpoint, settings) if settings.llm_base_url else None
        if endpoint is None:
            from zhiwen.tools.llm_server import _announced, _servers  # embedded: ready once started

            servers = [s for s in _servers.values() if s.process is not None and s.process.poll() is None]
            # or the one another zhiwen process of this ZHIWEN_HOME runs, which this server then uses
            endpoint = (
                servers[0].endpoint
                if servers
                else await asyncio.to_thread(_announced, settings, settings.local_model)
            )
            if endpoint is None:
                return False, "embedded model server not started yet"
        async with httpx.AsyncClient(timeout=2.0, trust_env=bool(settings.llm_base_url)) as client:
            resp = await client.get(
                f"{endpoint.base_url}/models", headers={"Authorization": f"Bearer {endpoint.api_key}"}
            )
        return resp.status_code == 200, f"model endpoint answered {resp.status_code}"
    except Exception as exc:
        return False, f"model endpoint unreachable: {type(exc).__name__}"


def _store_open() -> tuple[bool, str]:
    root = get_settings().kb_root
    try:
        root.mkdir(parents=True, exist_ok=True)
        return True, "knowledge-base folder writable"  # not its path: /ready is open to anyone
    except OSError as exc:
        log.warning("knowledge-base folder %s not writable: %s", root, exc)
        return False, "knowledge-base folder not writable (see the server log)"


@router.get("/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "alive"}


async def _readiness(request: Request) -> tuple[bool, dict[str, str]]:
    """What /ready answers; also sets the ``zhiwen_ready`` gauge, so alerts see readiness lost."""
    model_ok, model_detail = await _model_answers()
    store_ok, store_detail = await asyncio.to_thread(_store_open)  # a file-system call: off the loop
    rt = runtime_of(request)
    checkpointer_ok = rt.checkpointer is not None
    shared_ok, shared_detail = await rt.coordination.healthy()
    ok = model_ok and store_ok and checkpointer_ok and shared_ok
    rt.metrics.ready.set(1 if ok else 0)
    body = {"status": "ready" if ok else "not ready", "model": model_detail, "store": store_detail,
            "shared": shared_detail}  # fmt: skip
    return ok, body


@router.get(
    "/ready",
    summary="Ready when the model endpoint answers and the stores (the shared database too) are open",
    response_model=None,
)
async def ready(request: Request) -> JSONResponse:
    ok, body = await _readiness(request)
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/health", summary="Summary of the server's state")
async def health(request: Request) -> dict[str, Any]:
    """``model``: ready (the endpoint answers now), starting, unavailable (it failed to start) or unreachable
    (started, or configured, and not answering now), by the same probe as /ready, so the two never disagree."""
    rt = runtime_of(request)
    # Open to anyone (no key): the model's state, never the error text, which can hold log lines and paths
    # (the server's log has it).
    if rt.model_error:
        model = "unavailable"
    else:
        answers, _ = await _model_answers()
        model = "ready" if answers else ("unreachable" if rt.model_ready else "starting")
    return {"status": "ok", "version": __version__, "model": model}


# Load balancers and uptime checks often probe with HEAD (it was a 405); left out of the schema, as GET's twins.
@router.head("/live", include_in_schema=False)
@router.head("/health", include_in_schema=False)
async def probe_alive() -> Response:
    return Response(status_code=200)


@router.head("/ready", include_in_schema=False)
async def probe_ready(request: Request) -> Response:
    ok, _ = await _readiness(request)
    return Response(status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    await _readiness(request)  # zhiwen_ready as of this scrape, whoever probes /ready (or nobody)
    # In a worker thread: the process collector reads /proc, which would block every stream on the loop.
    body = await asyncio.to_thread(generate_latest, runtime_of(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
