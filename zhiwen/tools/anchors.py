"""Does a source state the answer for the very thing asked: the year, the date, the model number?

Lexical grounding passes an answer copied from a near-miss passage ("BMW sold 2.4 million cars in 2022"
for a question about 2021): every word of it is in the sources. Hard negatives differ from the asked
fact in exactly these slots, so the check is: the question's anchors (numbers, and codes such as "M1")
must occur in one source sentence, or the sentence before it, together with the answer's own figures
(or, for an answer without figures, a share of its new words). Questions without anchors are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from zhiwen.memory.chunking import split_sentences
from zhiwen.tools.grounding import text_terms, topic_terms
from zhiwen.tools.tokenize import tokenize

__all__ = ["anchored", "figures_on_topic", "question_anchors"]

_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]+\d+[A-Za-z0-9]*|\d+[A-Za-z]+[A-Za-z0-9]*(?![A-Za-z0-9])")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_CITE = re.compile(r"\[\d{1,3}\]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
# Words that make the year after them a comparison's base or a starting point, not the year a figure is for.
_COMPARED = re.compile(
    r"(比|较|较之|相比|同比|环比|自|从|than|from|since|compared (?:with|to)|over)\s*$", re.IGNORECASE
)
# Share of the answer's new words (not in the question) the anchoring sentence must hold when the
# answer has no figures of its own: low, since answers are phrased freely, but not zero.
MIN_NEW_TERMS = 0.3
# Share of the question's topic terms that the sentence stating an answer's figure must hold, with the
# sentence before it and its passage's opening. Chosen by replaying the committed records' passed answers
# (benchmarks/figure_check.py, docs/evaluation.md): right / wrong answers refused on xquad-zh and
# cmrc2018-dev are 6 / 39 and 6 / 58 at 0.4; 1 / 25 and 4 / 32 at 0.3; 10 / 54 and 10 / 73 at 0.5.
MIN_TOPIC_TERMS = 0.4


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUM.findall(text)}


def _terms(text: str) -> set[str]:
    return set(tokenize(text, "bigram"))


def question_anchors(question: str) -> tuple[set[str], set[str]]:
    """(numbers, codes) of the question: "2021年", "10·29" give numbers; "M1", "5G" give codes."""
    codes = {c.lower() for c in _CODE.findall(question)}
    numbers = _numbers(_CODE.sub(" ", question))
    return numbers, codes


def _years(window: str, start: int, end: int | None = None) -> list[str]:
    """The years written in ``window[start:end]`` that a figure can be stated for: not a comparison's base or
    a starting point ("比2021年增长", "自2017年突破3万亿元以来", "up from 2019")."""
    stop = len(window) if end is None else end
    return [
        m.group()
        for m in _YEAR.finditer(window, start, stop)
        if not _COMPARED.search(window[max(0, m.start() - 12) : m.start()])
    ]


def _stated_for(window: str, start: int, figures: set[str], years: set[str]) -> bool:
    """A figure occurs in ``window[start:]`` (the sentence) and the year it is stated for is an asked one.

    That year is the last one written before the figure in its own sentence ("2022年出生率为6.77‰，比2021年下降"
    states 6.77 for 2022 although 2021 is in the sentence); with none there, the first one after it in the
    sentence ("374 companies listed ... as of 31 August 2009": the sentence before names 1991, which
    refused that right answer), else the last one in the sentence before. A comparison's base year does not
    count ("2021年，上海…。地区生产总值43214.85亿元，…自2017年突破3万亿元以来": 2017 refused the right answer for
    2021). Without asked years, or with no year at all, any occurrence counts.
    """
    for m in _NUM.finditer(window, start):
        if m.group().replace(",", "") not in figures:
            continue
        before = (
            _years(window, start, m.start()) or _years(window, m.end())[:1] or _years(window, 0, m.start())
        )
        if not years or not before or before[-1] in years:
            return True
    return False


def anchored(question: str, answer: str, sources: Sequence[str]) -> bool | None:
    """True when some source sentence states the answer with every anchor of the question nearby.

    None when the question has no anchors (there is nothing to check). ``answer`` may carry ``[n]``.
    """
    numbers, codes = question_anchors(question)
    if not numbers and not codes:
        return None
    answer = _CITE.sub("", answer)
    years = {n for n in numbers if _YEAR.fullmatch(n)}
    own_numbers = _numbers(answer) - numbers
    new_terms = _terms(answer) - _terms(question)
    for source in sources:
        sentences = [source[a:b] for a, b in split_sentences(source)]
        for i, sentence in enumerate(sentences):
            window = (sentences[i - 1] if i else "") + sentence
            flat = _NOT_ALNUM.sub("", window.lower())  # "CVPR 2022", "GPT-4" match "cvpr2022", "gpt4"
            if not numbers <= _numbers(window) or not all(c in flat for c in codes):
                continue
            if own_numbers:
                if _stated_for(window, len(window) - len(sentence), own_numbers, years):
                    return True
            elif not new_terms or len(new_terms & _terms(sentence)) >= MIN_NEW_TERMS * len(new_terms):
                return True
    return False


def figures_on_topic(
    question: str, answer: str, sources: Sequence[str], share: float = MIN_TOPIC_TERMS
) -> bool | None:
    """True when each figure of the answer (not in the question) stands in a source sentence about what
    was asked: with the sentence before it and its passage's opening (the title line and first sentence,
    which name what the passage is about), it holds ``share`` of the question's topic terms.

    Grounding takes figures from the whole source, so "most of the places of religious worship in Warsaw
    were destroyed in 1909" passed on a passage whose 1909 counts Warsaw's Jews and Protestants, and
    whose sentence about destroyed places of worship says 1944. The opening counts because a product page
    names its product once: "安心贷是个人信用贷款。申请人须年满18周岁。年利率为3.45%。" states 3.45% about
    安心贷. Without it, the replay refused 22 right answers on cmrc2018-dev instead of 6. None when the
    answer has no figures of its own.
    """
    answer = _CITE.sub("", answer)
    own = _numbers(answer) - _numbers(question)
    if not own:
        return None
    topic = topic_terms(question)
    need = max(1.0, share * len(topic))
    stated: set[str] = set()
    for source in sources:
        sentences = [source[a:b] for a, b in split_sentences(source)]
        opening = sentences[0] if sentences else ""
        for i, sentence in enumerate(sentences):
            figures = own & _numbers(sentence) - stated
            if not figures:  # only a sentence stating a figure not yet placed is worth tokenizing
                continue
            window = opening + (sentences[i - 1] if i > 1 else "") + sentence
            if len(topic & text_terms(window)) >= need:
                stated |= figures
    return stated == own
