"""The FastAPI app: ``zhiwen serve`` runs it; ``create_app()`` builds one (tests build several)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.security import HTTPBearer
from mcp.server.transport_security import TransportSecuritySettings

from zhiwen import __version__
from zhiwen.errors import ZhiwenError
from zhiwen.graph.builder import build
from zhiwen.mcp_server import McpBackend, build_mcp_server
from zhiwen.memory.checkpointer import open_checkpointer
from zhiwen.memory.feedback import open_feedback_store
from zhiwen.memory.ingest import IngestReport, ingest_paths
from zhiwen.memory.kb import kb_dir
from zhiwen.memory.keys import open_key_store
from zhiwen.memory.registry import open_kb
from zhiwen.server.coordination import open_coordinator
from zhiwen.server.cors import JSONCORSMiddleware
from zhiwen.server.errors import install_error_handlers
from zhiwen.server.guard import Guard
from zhiwen.server.jobs import IngestWorker, JobStore
from zhiwen.server.keyring import KeyRing
from zhiwen.server.metrics import Metrics
from zhiwen.server.quotas import Kind, Ledger
from zhiwen.server.request_metrics import RequestMetrics
from zhiwen.server.routes import chat, health, kbs, threads, web
from zhiwen.server.routes import feedback as feedback_routes
from zhiwen.server.routes import feishu as feishu_routes
from zhiwen.server.runtime import AppRuntime
from zhiwen.server.settings import ServerSettings, get_server_settings
from zhiwen.server.telemetry import setup_tracing
from zhiwen.settings import get_settings
from zhiwen.tools.llm_server import resolve_endpoint

__all__ = ["create_app", "refuse_unguarded"]

log = logging.getLogger("zhiwen.server")


def _settle_heap(default_kb: str) -> None:
    """Open the default knowledge base, then freeze the heap for the garbage collector.

    After start-up about 220,000 objects are tracked (LangChain, pydantic, Chroma, the embedder); a full
    collection walks them all, ~120 ms on a 2-core machine, during which no stream on the event loop
    moves; under 200 streams that made the p95 added latency hundreds of ms. Frozen objects are never
    scanned again (they are still freed by reference counting), so later collections see only what
    requests create.
    """
    try:
        open_kb(default_kb)
    except ZhiwenError as exc:  # a missing default knowledge base is reported per request
        log.info("default knowledge base not opened at start-up: %s", exc)
    except Exception as exc:  # a warm-up must not stop the server; requests report the real error
        log.warning("default knowledge base %r failed to open at start-up: %r", default_kb, exc)
    gc.collect()
    gc.freeze()


async def _start_model(rt: AppRuntime) -> None:
    """Start (or reach) the model endpoint in the background so /live answers at once."""
    try:
        await asyncio.to_thread(resolve_endpoint, get_settings())
        rt.model_ready = True
    except Exception as exc:  # reported by /health and /ready; chat requests get a clear 502
        rt.model_error = exc.detail if isinstance(exc, ZhiwenError) else str(exc)
        log.error("model endpoint unavailable: %s", rt.model_error)


def keyring_for(settings: ServerSettings) -> KeyRing:
    """The admin keys of ``ZHIWEN_API_KEYS`` and the keys ``zhiwen keys create`` stored (ZHIWEN_HOME, or the
    shared database)."""
    return KeyRing(settings.keys, open_key_store(get_settings()), settings.allow_open)


def _ingest_worker(settings: ServerSettings, metrics: Metrics) -> IngestWorker:
    """The upload worker, started; it first takes up the jobs a previous server left unsettled."""

    def documents(kb: str) -> set[str]:
        return {d.source for d in open_kb(kb).documents()}

    def ingest(kb: str, paths: list[Path], progress: Callable[[int, int], None]) -> IngestReport:
        # Never creates the knowledge base: a job queued before it was dropped fails instead of reviving it.
        uploads = kb_dir(get_settings().kb_root, kb) / "uploads"
        return ingest_paths(open_kb(kb), paths, progress, id_root=uploads)

    store = JobStore(get_settings().home / "jobs.sqlite", get_settings().database_url)
    worker = IngestWorker(
        store,
        ingest,
        documents,
        settings.max_queued_jobs,
        settings.max_queued_upload_bytes,
        on_settled=lambda job: metrics.ingest_jobs.labels(job.status).inc(),
    )
    metrics.watch_ingest_queue(worker.depth)
    worker.start()
    return worker


def refuse_unguarded(settings: ServerSettings, keyring: KeyRing | None = None) -> None:
    """ZhiwenError unless API keys exist (the environment's or stored ones) or open serving was chosen.

    ``zhiwen serve`` calls it before uvicorn starts: with several workers the app is built in each
    worker, where a refusal made uvicorn start a new worker again and again.
    """
    ring = keyring or keyring_for(settings)
    try:
        if not ring.has_keys and not settings.allow_open:
            raise ZhiwenError(
                "the server needs API keys: set ZHIWEN_API_KEYS (comma-separated admin keys), create keys with "
                "`zhiwen keys create`, or, for local use only, ZHIWEN_ALLOW_OPEN=true"
            )
    finally:
        if keyring is None:  # opened here for the check: its store is closed here too
            ring.store.close()


def create_app(settings: ServerSettings | None = None, start_model: bool = True) -> FastAPI:
    settings = settings or get_server_settings()
    keyring = keyring_for(settings)
    try:
        refuse_unguarded(settings, keyring)
        coordination = open_coordinator(
            get_settings().database_url, settings.rate_per_minute, settings.max_concurrent
        )
    except ZhiwenError as exc:
        keyring.store.close()  # its PostgreSQL pool's threads, if it has one
        raise SystemExit(str(exc)) from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything opened here is closed on the way out, last opened first, even when closing another
        # part fails (the shared database gone at shutdown) or start-up stops half-way: an exit stack runs
        # every callback. Left open, a store's PostgreSQL pool is closed by the garbage collector instead.
        async with AsyncExitStack() as stack:
            stack.push_async_callback(asyncio.to_thread, keyring.store.close)
            saver = await stack.enter_async_context(open_checkpointer())
            await coordination.open()
            stack.push_async_callback(coordination.close)
            metrics = Metrics()
            jobs = await asyncio.to_thread(_ingest_worker, settings, metrics)
            stack.callback(jobs.stop)  # the worker closes its own store once its queue is settled
            limits: dict[Kind, int] = {"kb": settings.max_kbs_per_key, "thread": settings.max_threads_per_key}
            shared = get_settings()
            quotas = await asyncio.to_thread(
                Ledger, shared.home / "quotas.sqlite", limits, shared.database_url
            )
            stack.push_async_callback(asyncio.to_thread, quotas.close)
            feedback = await asyncio.to_thread(open_feedback_store, shared)
            stack.push_async_callback(asyncio.to_thread, feedback.close)
            rt = AppRuntime(
                settings=settings,
                metrics=metrics,
                threaded=build().compile(checkpointer=saver),
                stateless=build().compile(),
                checkpointer=saver,
                jobs=jobs,
                quotas=quotas,
                coordination=coordination,
                feedback=feedback,
            )
            app.state.zhiwen = rt
            if settings.gc_freeze:
                await asyncio.to_thread(_settle_heap, settings.default_kb)
            if start_model:
                stack.callback(asyncio.create_task(_start_model(rt)).cancel)
            stack.callback(asyncio.create_task(keyring.refresh_forever(settings.keys_refresh_seconds)).cancel)
            async with mcp.session_manager.run():
                yield

    app = FastAPI(
        title="zhiwen",
        version=__version__,
        summary="OpenAI-compatible, strictly sourced knowledge-base chat (Chinese and English).",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(
        auto_error=False, description="An admin key (ZHIWEN_API_KEYS) or a key from `zhiwen keys create`"
    )
    routers = (chat.router, threads.router, kbs.router, feedback_routes.router, health.router, web.router)
    for router in routers[:4]:
        app.include_router(router, dependencies=[Depends(bearer)])
    app.include_router(health.router)
    feishu_routes.install(app)  # POST /feishu/events, signed by Feishu (404 without ZHIWEN_FEISHU_*)
    app.include_router(web.router)  # the chat page; it sends the key with every call it makes
    mcp = build_mcp_server(
        lambda: McpBackend(app.state.zhiwen.threaded, app.state.zhiwen.coordination, settings.default_kb)
    )
    # Stateless, so any replica answers any call; DNS-rebinding checks are the guard's (origins.py), as for
    # every other route, and so is the API key.
    no_rebinding_check = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    mcp_routes = mcp.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, transport_security=no_rebinding_check
    ).routes
    app.router.routes.extend(mcp_routes)
    install_error_handlers(app)
    setup_tracing(app, settings)
    app.add_middleware(Guard, settings=settings, keyring=keyring, limits=coordination)
    if settings.cors_origin_list:  # outermost: a browser's preflight is answered before the key check
        app.add_middleware(
            JSONCORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Thread-Id"],
        )
    # Outermost: every answer is counted, refused keys and preflights too. The templates name the route of a
    # request refused before routing (the included routers' own route lists; app.openapi() warned in tests).
    paths = [str(getattr(r, "path", "")) for r in [*(r for rt in routers for r in rt.routes), *mcp_routes]]
    app.add_middleware(RequestMetrics, paths=[p for p in paths if p])
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """``zhiwen.server.app:app`` for uvicorn: built on first access, from the environment."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
