"""The BM25 tokenizer: jieba (or character n-grams) for Chinese, stemmed words for Latin script.

The same function runs at index and query time. Which Chinese segmentation wins is an empirical
question: ``benchmarks/retrieval.py`` compares the modes on the shared sets, and the default is the best.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

__all__ = ["CJK_MODES", "CjkMode", "jieba_module", "tokenize"]

CjkMode = Literal["jieba", "search", "bigram", "search+bigram"]
CJK_MODES: tuple[CjkMode, ...] = ("jieba", "search", "bigram", "search+bigram")

_RUNS = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)|([A-Za-z0-9\u00c0-\u024f]+)")
_EN_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "which",
        "what",
        "who",
        "whom",
        "when",
        "where",
        "why",
        "how",
        "do",
        "does",
        "did",
        "not",
        "no",
        "can",
        "could",
        "should",
        "would",
        "may",
        "might",
        "than",
        "so",
    ]
)
_ZH_STOP = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "也",
        "都",
        "而",
        "就",
        "把",
        "被",
        "之",
        "其",
        "这",
        "那",
        "有",
        "吗",
        "呢",
        "吧",
        "啊",
        "么",
        "什么",
        "哪些",
        "多少",
        "怎么",
        "如何",
    ]
)
_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    import Stemmer

    stem: Callable[[str], str] = Stemmer.Stemmer("english").stemWord
    return stem


def jieba_module() -> Any:
    """jieba, initialised once (its dictionary loaded) for every user in the process."""
    return _jieba()


@lru_cache(maxsize=1)
def _jieba() -> object:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()
    return jieba


def _cjk(run: str, mode: CjkMode) -> list[str]:
    out: list[str] = []
    if mode in ("jieba", "search", "search+bigram"):
        jb = _jieba()
        words = jb.lcut_for_search(run) if mode != "jieba" else jb.lcut(run)  # type: ignore[attr-defined]
        out.extend(w for w in words if w not in _ZH_STOP)
    if mode in ("bigram", "search+bigram"):
        if mode == "bigram":
            out.extend(c for c in run if c not in _ZH_STOP)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def tokenize(text: str, cjk_mode: CjkMode = "search+bigram") -> list[str]:
    """Index/query terms of ``text``: lowercased, stemmed, stop words dropped."""
    stem = _stemmer()
    tokens: list[str] = []
    # NFKC folds full-width Latin letters and digits (ＡＴＭ, ２０２４), common in Chinese text, to ASCII.
    for m in _RUNS.finditer(unicodedata.normalize("NFKC", text)):
        if m.group(1):
            tokens.extend(_cjk(m.group(1), cjk_mode))
        else:
            word = m.group(2).lower()
            if word not in _EN_STOP:
                tokens.append(stem(word))
    return tokens
