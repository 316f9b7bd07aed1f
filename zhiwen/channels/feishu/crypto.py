"""Feishu's event callback security: the request signature and the encrypted body.

* Signature: ``X-Lark-Signature`` is the hex SHA-256 of ``timestamp + nonce + encrypt_key`` (as UTF-8)
  followed by the raw request body.
* Body: ``{"encrypt": base64(iv + AES-256-CBC(key, iv, PKCS7(json)))}`` with key = SHA-256(Encrypt Key).

The official SDK (lark-oapi) has both, but importing any part of it loads the whole SDK (about 3 s here)
and pins websockets below 16; these few lines use ``cryptography`` instead, and the tests check them
against Feishu's documented construction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BadCiphertext", "decrypt", "signature", "signature_ok"]

_BLOCK = 16


class BadCiphertext(ValueError):
    """Not base64, not whole AES blocks, bad padding, or not UTF-8: one error for all (no padding oracle)."""


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def signature_ok(timestamp: str, nonce: str, encrypt_key: str, body: bytes, sent: str) -> bool:
    """Compared in constant time; an empty ``sent`` is never right."""
    expected = signature(timestamp, nonce, encrypt_key, body)
    return bool(sent) and hmac.compare_digest(expected.encode(), sent.strip().lower().encode())


def decrypt(encrypt_key: str, encrypted: str) -> str:
    """The plaintext of an ``encrypt`` field."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadCiphertext("not base64") from exc
    if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
        raise BadCiphertext("not whole AES blocks")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:_BLOCK])).decryptor()
    padded = decryptor.update(raw[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except ValueError as exc:  # bad padding, or UnicodeDecodeError (a ValueError too)
        raise BadCiphertext("not a Feishu event") from exc
