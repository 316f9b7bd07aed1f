"""Tell Chinese from English by script (cheap and good enough for routing and checks)."""

from __future__ import annotations

import re

__all__ = ["approx_tokens", "detect_language", "scripts"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str, default: str = "en") -> str:
    """'zh' when Chinese characters are at least a fifth of the letters, else 'en' (``default`` if none)."""
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0 and latin_words == 0:
        return default
    return "zh" if cjk >= max(1, latin_words) * 0.5 else "en"


def scripts(text: str) -> set[str]:
    """Which scripts ``text`` has letters of: "zh" (Chinese characters) and "en" (Latin letters)."""
    found = set()
    if _CJK.search(text):
        found.add("zh")
    if re.search(r"[A-Za-z]", text):
        found.add("en")
    return found


def approx_tokens(text: str) -> int:
    """Rough token count: one per CJK character, one per four other characters."""
    cjk = len(_CJK.findall(text))
    return cjk + (len(text) - cjk) // 4 + 1
