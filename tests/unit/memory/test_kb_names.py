"""Names of new knowledge bases: what a shared store would reject is refused when the base is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import HashEmbedder

from zhiwen.errors import ZhiwenError
from zhiwen.memory.kb import KnowledgeBase, check_new_name


@pytest.mark.parametrize("name", ["bank", "产品手册", "ok.v2", "my-kb", "kb_2026", "a" * 64])
def test_good_names(name: str) -> None:
    check_new_name(name)


@pytest.mark.parametrize(
    "name", ["a..b", "a.", ".x", "-x", "x_", " x", "x ", "a/b", "a\\b", "a\x00b", "a\nb", "", "a" * 65]
)
def test_refused_names(name: str) -> None:
    with pytest.raises(ZhiwenError, match="knowledge base name"):
        check_new_name(name)


def test_refused_at_creation_only(tmp_path: Path) -> None:
    with pytest.raises(ZhiwenError, match=r"'a\.\.b' is refused"):
        KnowledgeBase.open(tmp_path, "a..b", HashEmbedder(), create=True)
    assert not any(tmp_path.iterdir()), "nothing made"
