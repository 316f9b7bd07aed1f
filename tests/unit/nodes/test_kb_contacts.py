"""The knowledge base's contacts the nodes read (``nodes/_common``): its allow-list and hotline."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhiwen.nodes import _common
from zhiwen.nodes._common import allow_list, kb_hotline


class _KB:
    def allowed_contacts(self) -> list[str]:
        return ["bank.example", "95588"]

    def hotline(self) -> str:
        return "95588"


def test_contacts_come_from_the_knowledge_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "open_kb", lambda name: _KB())
    assert (allow_list("bank"), kb_hotline("bank")) == (["bank.example", "95588"], "95588")


def test_no_such_knowledge_base_allows_nothing_and_has_no_hotline(zhiwen_home: Path) -> None:
    assert (allow_list("no-such-base"), kb_hotline("no-such-base")) == ([], "")
