"""The extractive fall-back: when no drafted answer passes the gate, the source sentence that states what was
asked, quoted word for word, instead of a refusal.

The embedded 0.5B model often fails to write an answer that is in its context: it words it away from the
passage, mixes in a figure of the next sentence, or says the sources hold nothing. On the committed records
(xquad-zh and cmrc2018-dev, ``hybrid``; docs/evaluation.md, "False refusals") the best-matching source
sentence of a refused question held the gold answer more often than the refused draft did. A sentence counts
only when it holds most of the question's topic terms, and half of those that are not the passage's title:
"澉浦镇的人口是多少？" must find "人口", not the sentence that defines 澉浦镇 (that second test took the wrong
quotes on cmrc2018-dev from 14 to 2 while keeping 11 of 12 right ones). A question that names a year, a figure
or a code ("2021年宝马全球销量？", "M1") is never quoted: near-miss passages state the same slot for another
year or product (the hard negatives rgb-zh is made of), and there the best sentence was a wrong quote: on
rgb-zh-quick all 4 quotes were (2 of them negatives), and over every run measured, 6 of 7 wrong quotes were of
such questions (docs/evaluation.md). A question that asks when ("硅谷银行破产时间", "When did ...?") is quoted
only with a sentence that states a time: on the full rgb-zh suite 5 of its 7 quoted negatives were
"X时间" questions answered by a sentence that merely names X ("一起期待神舟十六号发射！").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from zhiwen.memory.chunking import split_sentences
from zhiwen.tools.anchors import question_anchors
from zhiwen.tools.grounding import text_terms, topic_terms

__all__ = [
    "MAX_QUOTE_CHARS",
    "QUOTE_COVERAGE",
    "QUOTE_PREDICATE_COVERAGE",
    "Quote",
    "asks_when",
    "closest_sentence",
    "states_a_time",
]

# Chosen on the committed records: 0.6 / 0.5 quote 22 right and 2 wrong sentences for xquad-zh's 117
# refusals, 11 right and 2 wrong for cmrc2018-dev's 87 (0.5 / 0.5: 36 right and 8 wrong on xquad-zh); without
# the questions that name a year, figure or code, 16 / 1 and 5 / 0.
QUOTE_COVERAGE = 0.6
QUOTE_PREDICATE_COVERAGE = 0.5
MAX_QUOTE_CHARS = 300  # a longer "sentence" is a run-on chunk, not a quotable statement


_ASKS_WHEN = re.compile(
    r"什么时候|什么时间|何时|哪一?年|哪一?天|哪个月|几月|几号|几日|时间[？?\s]*$|日期[？?\s]*$|时间是|日期是|"
    r"^\s*when\b|\b(what|which) (year|date|day|month|time|century|decade|era)\b|\bin what year\b",
    re.IGNORECASE,
)
_CN_DIGITS = "零〇一二三四五六七八九十百千两"
# A date or clock time: "1817", "1990s", "5月30日", "十三时", "二十世纪", "March".
_DATE = re.compile(
    rf"[0-9{_CN_DIGITS}]+\s*(年代|年|月|日|号|时|点|世纪)|\b(1[0-9]{{3}}|20[0-9]{{2}})s?\b|"
    r"\b(january|february|march|april|june|july|august|september|october|november|december|century|decade)\b",
    re.IGNORECASE,
)
# A time said in words ("就在那一刻", "only became supportive when Germany started to build").
_TIME_WORD = re.compile(
    r"时候|时期|期间|当时|那时|此时|之后|之前|以后|以前|那一刻|随后|今年|去年|明年|前年|昨天|今天|明天|上午|下午|凌晨|"
    r"傍晚|晚上|早上|\b(when|after|before|during|until|since|ago|later|earlier|then|once|while|today|yesterday)\b",
    re.IGNORECASE,
)


def asks_when(question: str) -> bool:
    """The question asks for a time: when, which year or date, "X时间"."""
    return bool(_ASKS_WHEN.search(question))


def states_a_time(sentence: str, question: str) -> bool:
    """``sentence`` states a date or time, not counting one written in the question itself ("神舟十六号" is a
    spacecraft in "神舟十六号发射时间？", not the sixteenth of a month)."""
    asked = question.lower()
    dates = (m.group(0).lower() for m in _DATE.finditer(sentence))
    return any(d not in asked for d in dates) or bool(_TIME_WORD.search(sentence))


@dataclass(frozen=True)
class Quote:
    """A sentence of source ``n`` (1-based) and the share of the question's topic terms it holds."""

    n: int
    text: str
    coverage: float


def _sentences(text: str, title: str) -> list[str]:
    """The sentences of a source's text, its title line left out (a passage's first line is its title)."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.strip() == title.strip():
            continue
        out.extend(line[a:b].strip() for a, b in split_sentences(line))
    return [s for s in out if s]


def closest_sentence(question: str, sources: Sequence[tuple[str, str]]) -> Quote | None:
    """The sentence among ``sources`` (``(text, title)`` pairs, numbered from 1) that best states what
    ``question`` asks, or None when none holds enough of it, the question has under two topic terms or
    names a year, figure or code, or it asks when and the sentence states no time."""
    asked = topic_terms(question)
    if len(asked) < 2 or any(question_anchors(question)):
        return None
    best: tuple[float, float, int, str] = (0.0, 0.0, 0, "")
    for n, (text, title) in enumerate(sources, start=1):
        predicate = asked - text_terms(title) if title else asked
        for sentence in _sentences(text, title):
            if len(sentence) > MAX_QUOTE_CHARS:
                continue
            terms = text_terms(sentence)
            coverage = len(asked & terms) / len(asked)
            said = len(predicate & terms) / len(predicate) if predicate else 1.0
            if (coverage, said) > best[:2]:
                best = (coverage, said, n, sentence)
    coverage, said, n, sentence = best
    if coverage < QUOTE_COVERAGE or said < QUOTE_PREDICATE_COVERAGE:
        return None
    if asks_when(question) and not states_a_time(sentence, question):
        return None  # it names what was asked about, not when
    return Quote(n, sentence, round(coverage, 3))
