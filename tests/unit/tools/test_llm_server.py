"""Without the `local` extra, asking for the embedded model is one clear error, not an import traceback."""

from __future__ import annotations

import importlib.util
import signal
import threading
import time
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from zhiwen.errors import LLMUnavailable
from zhiwen.settings import Settings
from zhiwen.tools import llm_server


def test_the_embedded_model_without_the_local_extra_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without_llama_cpp(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "llama_cpp" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_llama_cpp)
    with pytest.raises(LLMUnavailable) as caught:
        llm_server.resolve_endpoint(Settings(home=tmp_path), "smollm2-135m")
    message = str(caught.value)
    assert "pip install -e '.[local]'" in message and "ZHIWEN_LLM_BASE_URL" in message
    assert "\n" not in message
    assert not (tmp_path / "models").exists(), "nothing assembled or started"


def _server_dying_of_sigill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, survives: str) -> Path:
    """The model server stand-in, on a dispatch build with haswell, x64 and zen4 variants."""
    starts = tmp_path / "starts"
    monkeypatch.setattr(llm_server, "SERVER_MODULE", "zhiwen.testing.sigill_server")
    monkeypatch.setattr(llm_server, "resolve_model", lambda key, home: tmp_path / "model.gguf")
    monkeypatch.setattr(llm_server, "cpu_variants", lambda folder: ["haswell", "x64", "zen4"])
    monkeypatch.setenv("SIGILL_SERVER_STARTS", str(starts))
    monkeypatch.setenv("SIGILL_SERVER_SURVIVES", survives)
    monkeypatch.delenv("ZHIWEN_LLAMA_CPU_VARIANT", raising=False)
    return starts


def test_a_server_killed_by_sigill_starts_again_on_the_avx2_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    starts = _server_dying_of_sigill(tmp_path, monkeypatch, survives="haswell")
    server = llm_server.LocalLLMServer("qwen2.5-0.5b", Settings(home=tmp_path))
    try:
        endpoint = server.start(timeout=30)
        assert starts.read_text().split() == ["auto", "haswell"]
        assert endpoint.base_url.endswith(f":{server.port}/v1")
        assert "died of SIGILL" in caplog.text and "haswell" in caplog.text
    finally:
        server.stop()


def test_when_every_variant_dies_of_sigill_the_error_says_the_server_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = _server_dying_of_sigill(tmp_path, monkeypatch, survives="")
    server = llm_server.LocalLLMServer("qwen2.5-0.5b", Settings(home=tmp_path))
    with pytest.raises(LLMUnavailable, match="exited at start-up"):
        server.start(timeout=30)
    assert starts.read_text().split() == ["auto", "haswell", "x64"]
    assert server.exit_code == -signal.SIGILL


def test_a_chosen_variant_that_dies_falls_back_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = _server_dying_of_sigill(tmp_path, monkeypatch, survives="x64")
    monkeypatch.setenv("ZHIWEN_LLAMA_CPU_VARIANT", "haswell")
    server = llm_server.LocalLLMServer("qwen2.5-0.5b", Settings(home=tmp_path))
    try:
        server.start(timeout=30)
        assert starts.read_text().split() == ["haswell", "x64"]
    finally:
        server.stop()


def test_a_variant_this_build_does_not_have_is_one_line_before_any_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a server that died at start-up, reported in two lines with a path to its log."""
    starts = _server_dying_of_sigill(tmp_path, monkeypatch, survives="haswell")
    monkeypatch.setenv("ZHIWEN_LLAMA_CPU_VARIANT", "bogus")
    server = llm_server.LocalLLMServer("qwen2.5-0.5b", Settings(home=tmp_path))
    with pytest.raises(LLMUnavailable) as caught:
        server.start(timeout=30)
    assert caught.value.detail == (
        "ZHIWEN_LLAMA_CPU_VARIANT='bogus' is not a CPU variant of this build (haswell, x64, zen4)"
    )
    assert not starts.exists(), "no server was started"


def test_the_server_outlives_the_thread_that_started_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent-death signal follows the forking thread: a server started from a worker thread (as the
    graph's nodes do, through asyncio.to_thread) must not die when that thread ends."""
    _server_dying_of_sigill(tmp_path, monkeypatch, survives="auto")  # this stand-in serves on any variant
    server = llm_server.LocalLLMServer("qwen2.5-0.5b", Settings(home=tmp_path))
    worker = threading.Thread(target=server.start, kwargs={"timeout": 30})
    worker.start()
    worker.join()
    try:
        assert server.process is not None
        time.sleep(0.5)  # the signal, were it sent, arrives at once
        assert server.process.poll() is None, f"the server died with the thread: {server.process.returncode}"
    finally:
        server.stop()
