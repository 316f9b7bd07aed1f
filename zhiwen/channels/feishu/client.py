"""A small async client for the few Open API calls the bot makes, with the tenant access token kept fresh.

Written with httpx rather than taken from lark-oapi: the SDK's async methods fetch the token with a blocking
HTTP call on the event loop, keep it in a process-wide cache keyed by app id, open a new connection pool for
every request, and do not fetch a new token when a call is refused for an expired one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["TOKEN_EXPIRED", "FeishuAPIError", "FeishuClient"]

log = logging.getLogger("zhiwen.feishu")

TOKEN_EXPIRED = frozenset({99991661, 99991663, 99991664, 99991668})
"""Error codes meaning the access token is missing, expired or invalid: fetch a new one, try once more."""


class FeishuAPIError(Exception):
    """A call the Open API refused (``code`` is Feishu's, 0 never), or answered with something not JSON."""

    def __init__(self, what: str, status: int, code: int, msg: str) -> None:
        super().__init__(f"{what}: HTTP {status}, code {code}: {msg[:200]}")
        self.status, self.code = status, code


def _body(resp: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        raise FeishuAPIError(what, resp.status_code, -1, "not JSON") from None
    if not isinstance(body, dict):
        raise FeishuAPIError(what, resp.status_code, -1, "not a JSON object")
    return body


class FeishuClient:
    """One per app; ``aclose()`` when done. Safe for many concurrent turns on one event loop."""

    def __init__(self, base_url: str, app_id: str, app_secret: str, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._app = {"app_id": app_id, "app_secret": app_secret}
        self._token = ""
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._bot_open_id = ""

    async def aclose(self) -> None:
        await self._http.aclose()

    async def token(self, rejected: str = "") -> str:
        """The tenant access token, fetched anew when it nears its expiry or when ``rejected`` is the one held.

        Refreshed when a tenth of its life (at most 10 minutes) is left: Feishu hands out a new token in the
        last 30 minutes of the old one's two hours, and a turn in flight should never carry a dead token.
        """
        async with self._lock:
            if self._token and self._token != rejected and time.monotonic() < self._refresh_at:
                return self._token
            resp = await self._http.post("/open-apis/auth/v3/tenant_access_token/internal", json=self._app)
            body = _body(resp, "tenant_access_token")
            token, expire = body.get("tenant_access_token"), body.get("expire")
            if (
                body.get("code") != 0
                or not isinstance(token, str)
                or not token
                or not isinstance(expire, int)
            ):
                raise FeishuAPIError("tenant_access_token", resp.status_code, int(body.get("code") or -1),
                                     str(body.get("msg", "")))  # fmt: skip
            self._token = token
            self._refresh_at = time.monotonic() + expire - min(600.0, expire / 10)
            return token

    async def call(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON body of an Open API call (``code`` 0); one retry with a new token if the token was refused."""
        token = await self.token()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {token}"}
            resp = await self._http.request(method, path, json=json, headers=headers)
            body = _body(resp, f"{method} {path}")
            code = body.get("code")
            if code in TOKEN_EXPIRED and attempt == 1:
                log.info("Feishu refused the access token (code %s): fetching a new one", code)
                token = await self.token(rejected=token)
                continue
            if resp.status_code >= 400 or code != 0:
                raise FeishuAPIError(f"{method} {path}", resp.status_code, int(code if isinstance(code, int) else -1),
                                     str(body.get("msg", "")))  # fmt: skip
            return body
        raise AssertionError("unreachable")

    async def bot_open_id(self) -> str:
        """The bot's own open_id (to tell its @-mentions from others'), asked once."""
        if not self._bot_open_id:
            body = await self.call("GET", "/open-apis/bot/v3/info")
            bot = body.get("bot")
            open_id = bot.get("open_id") if isinstance(bot, dict) else None
            if not isinstance(open_id, str) or not open_id:
                raise FeishuAPIError("GET /open-apis/bot/v3/info", 200, -1, "no bot.open_id")
            self._bot_open_id = open_id
        return self._bot_open_id

    async def reply_card(self, message_id: str, card: str, in_thread: bool) -> str:
        """Reply to ``message_id`` with an interactive card (JSON text); the card message's id."""
        body = {"msg_type": "interactive", "content": card, "reply_in_thread": in_thread}
        data = await self.call("POST", f"/open-apis/im/v1/messages/{quote(message_id, safe='')}/reply", body)
        new_id = (data.get("data") or {}).get("message_id")
        if not isinstance(new_id, str) or not new_id:
            raise FeishuAPIError("reply", 200, -1, "no data.message_id")
        return new_id

    async def update_card(self, message_id: str, card: str) -> None:
        """Replace a card the bot sent (the card must say ``update_multi``)."""
        await self.call("PATCH", f"/open-apis/im/v1/messages/{quote(message_id, safe='')}", {"content": card})
