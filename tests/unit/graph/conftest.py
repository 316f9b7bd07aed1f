"""Fixtures for whole-graph tests: a recording fake chat model and one tiny real knowledge base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from zhiwen import service
from zhiwen.memory import registry
from zhiwen.nodes._common import set_model_override
from zhiwen.settings import get_settings

KB_DOCS = {
    "card.md": "# 金卡信用卡\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n",
    "loan.md": "# 安心贷\n\n安心贷是一款个人消费贷款，最高额度为二十万元，期限最长三年。\n",
    "wire.md": (
        "# Wire transfers\n\nInternational wire transfers take three business days. "
        "The fee for an international wire transfer is 15 dollars.\n"
    ),
}


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel (streams word by word) that keeps the messages of every call."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


FakeModel = Callable[..., RecordingChatModel]


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """``fake_model("reply 1", "reply 2")`` makes every node use a fake model giving those replies."""

    def make(*replies: str) -> RecordingChatModel:
        model = RecordingChatModel(messages=iter([AIMessage(content=r) for r in replies]))
        set_model_override(model)
        return model

    yield make
    set_model_override(None)


@pytest.fixture(scope="module")
def tiny_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-document knowledge base (zh and en) embedded with the real e5 model, once per module."""
    base = tmp_path_factory.mktemp("graph-kb")
    docs = base / "docs"
    docs.mkdir()
    for name, text in KB_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHIWEN_HOME", str(base / "home"))
        mp.delenv("ZHIWEN_LLM_BASE_URL", raising=False)
        get_settings.cache_clear()
        report = service.ingest("tiny", [Path(docs)])
        assert report.added == len(KB_DOCS)
        try:
            yield "tiny"
        finally:
            registry.close_all()
            get_settings.cache_clear()
