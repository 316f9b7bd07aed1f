"""``POST /feishu/events``: the Feishu / Lark event subscription callback (``zhiwen.channels.feishu``).

Not behind the API keys (Feishu cannot send one): the request's signature, timestamp and verification token
are its authentication, checked before anything runs. Without ``ZHIWEN_FEISHU_*`` settings it answers 404.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from zhiwen.channels.feishu.bot import FeishuBot, Turns
from zhiwen.channels.feishu.callback import Challenge, Refused, open_callback
from zhiwen.channels.feishu.client import FeishuClient
from zhiwen.channels.feishu.dedup import EventLog
from zhiwen.channels.feishu.events import BadEvent
from zhiwen.channels.feishu.settings import FeishuSettings, refuse_half_configured
from zhiwen.server.errors import APIError, error_body
from zhiwen.server.routes.feedback import rated_turn
from zhiwen.server.runtime import AppRuntime
from zhiwen.settings import get_settings

__all__ = ["install", "router"]

PATH = "/feishu/events"
router = APIRouter(tags=["feishu"])


# Not in /openapi.json: Feishu calls it, no API client does (its body is Feishu's, encrypted).
@router.post(PATH, include_in_schema=False, response_model=None)
async def feishu_events(request: Request) -> JSONResponse:
    bot: FeishuBot | None = getattr(request.app.state, "feishu", None)
    settings: FeishuSettings | None = getattr(request.app.state, "feishu_settings", None)
    if bot is None or settings is None:
        raise APIError(404, "the Feishu bot is not configured (ZHIWEN_FEISHU_* settings)", code="not_found")
    limit = request.app.state.zhiwen.settings.max_body_bytes
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return JSONResponse(error_body(413, f"request body larger than {limit} bytes"), status_code=413)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        opened = open_callback(raw, headers, settings.encrypt_key, settings.verification_token,
                               settings.app_id, time.time())  # fmt: skip
        if isinstance(opened, Challenge):
            return JSONResponse({"challenge": str(opened)})
        return JSONResponse(await bot.handle(opened))
    except Refused as exc:
        return JSONResponse(error_body(exc.status, str(exc)), status_code=exc.status)
    except BadEvent as exc:
        return JSONResponse(error_body(400, f"not a Feishu event: {exc}"), status_code=400)


def _recorder(rt: AppRuntime, kb: str) -> Any:
    async def record(thread: str, checkpoint: str, rating: str, rater: str) -> bool:
        config: Any = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint}}
        snapshot = await rt.threaded.aget_state(config)
        if not snapshot.created_at:
            return False
        item = rated_turn(snapshot.values or {}, thread, cast(Literal["up", "down"], rating), "", kb)
        if item is None:
            return False
        await asyncio.to_thread(rt.feedback.add, item, rater)
        rt.metrics.feedback.labels(rating).inc()
        return True

    return record


def install(app: FastAPI, settings: FeishuSettings | None = None) -> None:
    """Mount the route; with the bot configured, open it after the app's start-up and close it before its
    shutdown (running turns are cancelled while the checkpointer is still open)."""
    settings = settings or FeishuSettings()
    app.include_router(router)
    app.state.feishu, app.state.feishu_settings = None, settings
    if not settings.enabled:
        return
    refuse_half_configured(settings)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            rt: AppRuntime = a.state.zhiwen
            shared = get_settings()
            events = await asyncio.to_thread(EventLog, shared.home / "feishu.sqlite", shared.database_url)
            client = FeishuClient(settings.base_url, settings.app_id, settings.app_secret)
            turns = Turns(rt.threaded, rt.coordination, _recorder(rt, settings.kb))
            a.state.feishu = FeishuBot(settings.kb, client, events, turns)
            try:
                yield state
            finally:
                bot, a.state.feishu = a.state.feishu, None
                await bot.aclose()

    app.router.lifespan_context = lifespan
