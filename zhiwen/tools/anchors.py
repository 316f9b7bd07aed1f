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
from zhiwen.tools.tokenize import tokenize

__all__ = ["anchored", "question_anchors"]

_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]+\d+[A-Za-z0-9]*|\d+[A-Za-z]+[A-Za-z0-9]*(?![A-Za-z0-9])")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_CITE = re.compile(r"\[\d{1,3}\]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
# Share of the answer's new words (not in the question) the anchoring sentence must hold when the
# answer has no figures of its own: low, since answers are phrased freely, but not zero.
MIN_NEW_TERMS = 0.3


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUM.findall(text)}


def _terms(text: str) -> set[str]:
    return set(tokenize(text, "bigram"))


def question_anchors(question: str) -> tuple[set[str], set[str]]:
    """(numbers, codes) of the question: "2021年", "10·29" give numbers; "M1", "5G" give codes."""
    codes = {c.lower() for c in _CODE.findall(question)}
    numbers = _numbers(_CODE.sub(" ", question))
    return numbers, codes


def anchored(question: str, answer: str, sources: Sequence[str]) -> bool | None:
    """True when some source sentence states the answer with every anchor of the question nearby.

    None when the question has no anchors (there is nothing to check). ``answer`` may carry ``[n]``.
    """
    numbers, codes = question_anchors(question)
    if not numbers and not codes:
        return None
    answer = _CITE.sub("", answer)
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
                if own_numbers & _numbers(sentence):
                    return True
            elif not new_terms or len(new_terms & _terms(sentence)) >= MIN_NEW_TERMS * len(new_terms):
                return True
    return False
