"""Open a callback request: signature, timestamp window, decryption, verification token, app id.

The order matters: a request whose signature is wrong is refused before its body is decrypted, and an
unsigned one gets the same 401 whether or not its ciphertext decrypts, so an attacker never learns whether
some ciphertext decrypts. Only Feishu's URL verification (sent when the
request URL is saved in the developer console) may come without signature headers; it is answered after
its verification token is checked, and nothing else runs for it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from zhiwen.channels.feishu.crypto import BadCiphertext, decrypt, signature_ok
from zhiwen.channels.feishu.events import Envelope, envelope_of

__all__ = ["WINDOW_SECONDS", "Challenge", "Refused", "open_callback"]

WINDOW_SECONDS = 300
"""How far a request's timestamp may be from the server's clock (replays of older requests are refused)."""


class Refused(Exception):
    """Answer ``status`` (400 malformed, 401 unsigned or stale, 403 wrong token or app) and run nothing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Challenge(str):
    """The ``challenge`` of a URL verification, to be echoed back."""


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def open_callback(raw: bytes, headers: Mapping[str, str], encrypt_key: str, verification_token: str,
                  app_id: str, now: float) -> Challenge | Envelope:  # fmt: skip
    """The checked event of a callback request (``headers`` with lower-case names), or a URL verification."""
    try:
        outer = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes ("[" * 10**6)
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(outer, dict) or not isinstance(outer.get("encrypt"), str):
        raise Refused(400, 'the body must be {"encrypt": "..."}: set an Encrypt Key on the Feishu app')
    sent = headers.get("x-lark-signature", "")
    timestamp, nonce = headers.get("x-lark-request-timestamp", ""), headers.get("x-lark-request-nonce", "")
    if sent:
        if not signature_ok(timestamp, nonce, encrypt_key, raw, sent):
            raise Refused(401, "the X-Lark-Signature does not match the request")
        if (
            not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12)
            or abs(now - int(timestamp)) > WINDOW_SECONDS
        ):
            raise Refused(
                401, f"the request's timestamp is more than {WINDOW_SECONDS} s from the server's clock"
            )
    unsigned = Refused(401, "the request is not signed (X-Lark-Signature missing)")
    try:
        body: Any = json.loads(decrypt(encrypt_key, outer["encrypt"]))
    except (BadCiphertext, ValueError, RecursionError):
        # Unsigned, the answer is the same whether or not the ciphertext decrypts: no decryption oracle.
        raise (Refused(400, "the body does not decrypt to a Feishu event") if sent else unsigned) from None
    if isinstance(body, dict) and body.get("type") == "url_verification":
        token, challenge = body.get("token"), body.get("challenge")
        if not isinstance(token, str) or not _same(token, verification_token):
            raise Refused(403, "wrong verification token")
        if not isinstance(challenge, str) or len(challenge) > 1000:
            raise Refused(400, "the challenge is missing")
        return Challenge(challenge)
    if not sent:
        raise unsigned
    try:
        envelope = envelope_of(body)
    except ValueError as exc:
        raise Refused(400, f"not a Feishu event: {exc}") from None
    if not _same(envelope.token, verification_token):
        raise Refused(403, "wrong verification token")
    if envelope.app_id and envelope.app_id != app_id:
        raise Refused(403, "the event is for another app")
    return envelope
