"""The callback's crypto against Feishu's documented example, an independent encryption and the official SDK."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from feishu_fakes import ENCRYPT_KEY, encrypt, sign, signed_request
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils import AESCipher
from lark_oapi.event.dispatcher_handler import EventDispatcherHandler

from zhiwen.channels.feishu.crypto import BadCiphertext, decrypt, signature, signature_ok


def test_feishus_documented_example_decrypts() -> None:
    # The example on Feishu's "Encrypt Key" page: key "test key", plaintext "hello world".
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"


@pytest.mark.parametrize("text", ["", "x" * 15, "y" * 16, "问" * 1000, json.dumps({"challenge": "abc"})])
def test_an_independent_encryption_decrypts_here_and_in_the_official_sdk(text: str) -> None:
    encrypted = encrypt(ENCRYPT_KEY, text)
    assert AESCipher(ENCRYPT_KEY).decrypt_str(encrypted) == text, "the test's encryption is Feishu's"
    assert decrypt(ENCRYPT_KEY, encrypted) == text


def test_the_signature_is_feishus_and_the_official_sdk_accepts_it() -> None:
    body, headers = signed_request({"schema": "2.0"})
    ts, nonce, sent = (
        headers[h] for h in ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")
    )
    assert signature(ts, nonce, ENCRYPT_KEY, body) == sent == sign(ts, nonce, ENCRYPT_KEY, body)
    request = RawRequest()
    request.body, request.headers = body, headers
    EventDispatcherHandler()._verify_sign(request, ENCRYPT_KEY)  # raises AccessDeniedException when wrong
    assert signature_ok(ts, nonce, ENCRYPT_KEY, body, sent)
    assert signature_ok(ts, nonce, ENCRYPT_KEY, body, sent.upper()), "hex case does not matter"
    for changed in ((ts + "1", nonce, body), (ts, nonce + "x", body), (ts, nonce, body + b" ")):
        assert not signature_ok(*changed[:2], ENCRYPT_KEY, changed[2], sent)
    assert not signature_ok(ts, nonce, "another key", body, sent)
    assert not signature_ok(ts, nonce, ENCRYPT_KEY, body, "")


def test_every_bad_ciphertext_is_one_error() -> None:
    good = base64.b64decode(encrypt(ENCRYPT_KEY, "hello"))
    flipped = bytearray(good)
    flipped[-1] ^= 0x01  # breaks the padding of the last block
    bad = [
        "not base64 !!",
        base64.b64encode(good[:16]).decode(),  # the IV alone
        base64.b64encode(good[:-1]).decode(),  # not whole blocks
        base64.b64encode(bytes(flipped)).decode(),
        encrypt("another key", "hello"),
        _encrypt_bytes(b"\xff\xfe not UTF-8"),
    ]
    for text in bad:
        with pytest.raises(BadCiphertext):
            decrypt(ENCRYPT_KEY, text)


def _encrypt_bytes(data: bytes) -> str:
    padder = padding.PKCS7(128).padder()
    key = hashlib.sha256(ENCRYPT_KEY.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    padded = padder.update(data) + padder.finalize()
    return base64.b64encode(bytes(16) + encryptor.update(padded) + encryptor.finalize()).decode()
