"""Feishu for the tests: callbacks encrypted and signed as Feishu does, and a fake Open API on loopback.

Written from Feishu's documentation, independently of ``zhiwen.channels.feishu`` (nothing is imported
from it): the body is ``{"encrypt": base64(iv + AES-256-CBC(SHA-256(Encrypt Key), iv, PKCS7(json)))}``,
``X-Lark-Signature`` the hex SHA-256 of timestamp + nonce + Encrypt Key + body.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

APP_ID, APP_SECRET = "cli_a1b2c3d4e5f60718", "app-secret-for-the-fake-feishu-0123"
TOKEN, ENCRYPT_KEY = "verification-token-0123456789", "encrypt-key-ABCDEFGHIJ-0123456789"
BOT_OPEN_ID = "ou_bot0000000000000000000000000001"
USER_OPEN_ID = "ou_user000000000000000000000000001"
EXPIRED = 99991663


def encrypt(key: str, plaintext: str, iv: bytes | None = None) -> str:
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def sign(timestamp: str, nonce: str, key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + key).encode() + body).hexdigest()


def signed_request(payload: dict[str, Any], key: str = ENCRYPT_KEY, age: float = 0.0,
                   signed: bool = True) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    """The raw body and headers Feishu would send for ``payload``, ``age`` seconds ago."""
    body = json.dumps({"encrypt": encrypt(key, json.dumps(payload, ensure_ascii=False))}).encode()
    timestamp, nonce = str(int(time.time() - age)), uuid.uuid4().hex
    headers = {"Content-Type": "application/json"}
    if signed:
        headers |= {"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
                    "X-Lark-Signature": sign(timestamp, nonce, key, body)}  # fmt: skip
    return body, headers


def envelope(event_type: str, event: dict[str, Any], event_id: str | None = None,
             token: str = TOKEN, app_id: str = APP_ID) -> dict[str, Any]:  # fmt: skip
    header = {"event_id": event_id or uuid.uuid4().hex, "token": token, "event_type": event_type,
              "create_time": str(int(time.time() * 1000)), "tenant_key": "tenant-1", "app_id": app_id}  # fmt: skip
    return {"schema": "2.0", "header": header, "event": event}


def message_event(text: str, chat_type: str = "p2p", mentions: list[dict[str, Any]] | None = None,
                  chat_id: str = "oc_chat0001", message_id: str | None = None, root_id: str = "",
                  sender: str = USER_OPEN_ID, event_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    message = {
        "message_id": message_id or f"om_{uuid.uuid4().hex}", "root_id": root_id, "parent_id": root_id,
        "create_time": str(int(time.time() * 1000)), "chat_id": chat_id, "chat_type": chat_type,
        "message_type": "text", "content": json.dumps({"text": text}, ensure_ascii=False),
        "mentions": mentions or [],
    }  # fmt: skip
    sender_block = {"sender_id": {"open_id": sender, "union_id": "on_x", "user_id": "u1"},
                    "sender_type": "user", "tenant_key": "tenant-1"}  # fmt: skip
    return envelope("im.message.receive_v1", {"sender": sender_block, "message": message}, event_id)


def mention(key: str, open_id: str, name: str) -> dict[str, Any]:
    return {"key": key, "id": {"open_id": open_id, "union_id": "on_y", "user_id": ""}, "name": name,
            "tenant_key": "tenant-1"}  # fmt: skip


def card_action(value: dict[str, Any], message_id: str, chat_id: str = "oc_chat0001",
                operator: str = USER_OPEN_ID) -> dict[str, Any]:  # fmt: skip
    event = {"operator": {"open_id": operator, "user_id": "u1", "tenant_key": "tenant-1"}, "token": "c-1",
             "action": {"tag": "button", "value": value}, "host": "im_message",
             "context": {"open_message_id": message_id, "open_chat_id": chat_id}}  # fmt: skip
    return envelope("card.action.trigger", event)


def post_event(url: str, payload: dict[str, Any], **options: Any) -> httpx.Response:
    body, headers = signed_request(payload, **options)
    return httpx.post(f"{url}/feishu/events", content=body, headers=headers, timeout=30)


@dataclass
class Call:
    method: str
    path: str
    token: str
    body: dict[str, Any]
    status: int = 0
    code: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


class FakeFeishu:
    """The Open API calls the bot makes, on 127.0.0.1; every call is recorded in ``calls``.

    Tokens live ``expire`` seconds; ``revoke()`` ends every token issued so far (as a reset App Secret does).
    """

    def __init__(self, expire: int = 7200) -> None:
        self.expire = expire
        self.calls: list[Call] = []
        self.tokens: dict[str, float] = {}  # token -> end of life (monotonic)
        self._lock = threading.Lock()
        self._messages = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeFeishu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def revoke(self) -> None:
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def of(self, method: str, prefix: str = "/open-apis/im/") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]

    def _answer(self, method: str, path: str, auth: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/open-apis/auth/v3/tenant_access_token/internal" and method == "POST":
            if body != {"app_id": APP_ID, "app_secret": APP_SECRET}:
                return 400, {"code": 10014, "msg": "app secret invalid"}
            token = f"t-{uuid.uuid4().hex}"
            self.tokens[token] = time.monotonic() + self.expire
            return 200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.expire}
        token = auth.removeprefix("Bearer ")
        if self.tokens.get(token, 0.0) <= time.monotonic():
            return 400, {"code": EXPIRED, "msg": "Invalid access token for authorization."}
        if path == "/open-apis/bot/v3/info" and method == "GET":
            return 200, {"code": 0, "msg": "ok", "bot": {"open_id": BOT_OPEN_ID, "app_name": "zhiwen"}}
        parts = path.split("/")  # ['', 'open-apis', 'im', 'v1', 'messages', ID, ('reply')]
        if parts[:5] == ["", "open-apis", "im", "v1", "messages"] and len(parts) in (6, 7):
            content = body.get("content")
            card = json.loads(content) if isinstance(content, str) else None
            if not isinstance(card, dict) or not card.get("config", {}).get("update_multi"):
                return 400, {"code": 230099, "msg": "card content invalid or not a shared card"}
            if method == "POST" and len(parts) == 7 and parts[6] == "reply":
                if body.get("msg_type") != "interactive":
                    return 400, {"code": 230001, "msg": "msg_type"}
                self._messages += 1
                return 200, {"code": 0, "msg": "success", "data": {"message_id": f"om_card{self._messages}"}}
            if method == "PATCH" and len(parts) == 6:
                return 200, {"code": 0, "msg": "success", "data": {}}
        return 404, {"code": 404, "msg": "not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                auth = self.headers.get("Authorization", "")
                with fake._lock:
                    status, answer = fake._answer(self.command, self.path, auth, body)
                    fake.calls.append(Call(self.command, self.path, auth.removeprefix("Bearer "), body, status,
                                           int(answer.get("code", 0)), answer))  # fmt: skip
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _any

        return Handler


def card_of(call: Call) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(call.body["content"])
    return card


def card_texts(card: dict[str, Any]) -> list[str]:
    """Every plain text in a card, in order (answer, sources, note)."""
    out = []
    for element in card["elements"]:
        if element["tag"] == "div":
            out.append(element["text"]["content"])
        elif element["tag"] == "note":
            out += [e["content"] for e in element["elements"]]
    return out


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for e in card["elements"] if e["tag"] == "action" for b in e["actions"]]
