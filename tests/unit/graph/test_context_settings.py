"""``context_from_settings``: what the environment lends to the runs of ``zhiwen ask/chat/serve``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zhiwen.cli import _context
from zhiwen.graph.context import context_from_settings
from zhiwen.settings import get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_match_a_plain_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZHIWEN_PERSONA", raising=False)
    monkeypatch.delenv("ZHIWEN_LLM_THINK_OPEN_IN_PROMPT", raising=False)
    ctx = context_from_settings(kb="docs")
    assert (ctx.kb, ctx.persona, ctx.expect_think_open_in_prompt) == ("docs", "bank", False)


def test_environment_sets_persona_and_think_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIWEN_PERSONA", "general")
    monkeypatch.setenv("ZHIWEN_LLM_THINK_OPEN_IN_PROMPT", "true")
    ctx = _context("docs", None, checked_only=True)
    assert (ctx.persona, ctx.expect_think_open_in_prompt, ctx.stream_drafts) == ("general", True, False)


def test_explicit_fields_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIWEN_LLM_THINK_OPEN_IN_PROMPT", "1")
    ctx = context_from_settings(kb="docs", expect_think_open_in_prompt=False, persona="general")
    assert (ctx.expect_think_open_in_prompt, ctx.persona) == (False, "general")


def test_a_bad_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIWEN_LLM_THINK_OPEN_IN_PROMPT", "maybe")
    with pytest.raises(ValueError, match="llm_think_open_in_prompt"):
        context_from_settings(kb="docs")
