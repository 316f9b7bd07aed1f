"""Answer metrics: exact match and F1 (SQuAD normalisation for English, CMRC character F1 for Chinese),
and answer containment for RGB-style slot answers.

Chinese F1 follows the CMRC 2018 script: precision and recall of the longest common *substring* of units
(Chinese characters; Latin words and numbers whole), not the bag-of-units overlap SQuAD uses for English.

Gold answers come as a list; an element that is itself a list is one slot with alternative spellings.
EM/F1 take the best score over the flat list of alternatives (as the SQuAD and CMRC scripts do).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["containment", "exact_match", "f1", "normalize_en", "normalize_zh", "score_answer"]

Gold = Sequence[str | Sequence[str]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITE = re.compile(r"\s*\[\d{1,3}\]")
_LATIN = re.compile(r"[a-z0-9]")
_SPACES = re.compile(r"\s+")
_ZH_PUNCT = set("，。！？；：、“”‘’（）《》【】…—·「」『』〈〉﹏～,.!?;:'\"()[]{}<>-_/\\|@#$%^&*+=`~ \t\n")


def normalize_en(text: str) -> str:
    """SQuAD: lower case, drop punctuation and articles, squeeze white space."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _latin_gap(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    between = (
        start > 0 and end < len(text) and bool(_LATIN.match(text[start - 1]) and _LATIN.match(text[end]))
    )
    return " " if between else ""


def normalize_zh(text: str) -> str:
    """CMRC-like: lower case, drop Chinese and Latin punctuation; white space goes too, except one space
    between two Latin words or numbers, so "2014 mls" still holds the whole number "2014" and "new york"
    is not "newyork" (the CMRC script keeps white space; next to Chinese "2014 年" and "2014年" are one answer).
    """
    kept = "".join(ch for ch in text.lower() if ch.isspace() or ch not in _ZH_PUNCT)
    return _SPACES.sub(_latin_gap, kept)


def _units(text: str, language: str) -> list[str]:
    """Comparison units: English words; Chinese characters, with Latin words and numbers kept whole (CMRC)."""
    if language == "en":
        return normalize_en(text).split()
    # Split before dropping white space, so "new york" stays two words (CMRC tokenizes Latin runs by word).
    return [u for u in re.findall(r"[a-z0-9]+|\S", text.lower()) if u not in _ZH_PUNCT]


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest common contiguous run of units (CMRC's ``find_lcs``)."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def _flat(gold: Gold) -> list[str]:
    return [g for item in gold for g in ([item] if isinstance(item, str) else item)]


def exact_match(prediction: str, gold: Gold, language: str) -> float:
    norm = normalize_en if language == "en" else normalize_zh
    p = norm(prediction)
    return float(any(p == norm(g) for g in _flat(gold)))


def _f1_one(prediction: str, answer: str, language: str) -> float:
    p, g = _units(prediction, language), _units(answer, language)
    common = sum((Counter(p) & Counter(g)).values()) if language == "en" else _longest_common_run(g, p)
    if not p or not g or common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, gold: Gold, language: str) -> float:
    """Best token (en) or character (zh) F1 against any gold alternative."""
    return max((_f1_one(prediction, g, language) for g in _flat(gold)), default=0.0)


def _mentions(text: str, phrase: str) -> bool:
    """``phrase`` occurs in ``text`` and does not cut a Latin word or number: "1" is not in "1889"."""
    if not phrase:
        return False
    head = r"(?<![a-z0-9])" if phrase[0].isascii() and phrase[0].isalnum() else ""
    tail = r"(?![a-z0-9])" if phrase[-1].isascii() and phrase[-1].isalnum() else ""
    return re.search(head + re.escape(phrase) + tail, text) is not None


def containment(prediction: str, gold: Gold, language: str, slots_style: bool = False) -> float:
    """Share of answer slots whose (any) alternative appears in the normalised prediction.

    SQuAD-style sets (``slots_style=False``): the strings are alternatives of one slot. RGB-style sets
    (``slots_style=True``): every element is a slot (a string, or a list of alternative spellings), e.g.
    each member state of an agreement must be named. A Latin word or number must appear whole.
    """
    norm = normalize_en if language == "en" else normalize_zh
    p = norm(prediction)
    slots: list[list[str]] = (
        [[g] if isinstance(g, str) else list(g) for g in gold] if slots_style else [_flat(gold)]
    )
    if not slots or not p:
        return 0.0
    hit = sum(any(_mentions(p, norm(alt)) for alt in slot) for slot in slots)
    return hit / len(slots)


def score_answer(answer: str, gold: Gold, language: str, slots_style: bool) -> dict[str, float]:
    """EM, F1 and containment of one answer, its ``[n]`` citation marks removed first."""
    plain = _CITE.sub("", answer)
    return {
        "em": exact_match(plain, gold, language),
        "f1": f1(plain, gold, language),
        "containment": containment(plain, gold, language, slots_style),
    }
