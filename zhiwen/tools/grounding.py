"""Deterministic answer checks: sentence support by sources, citation validity, attribution, refusals.

Lexical support is used rather than an NLI model because it is fast, explainable and works the same in
Chinese and English; numbers are checked exactly, since an invented figure is the costliest error here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zhiwen.memory.chunking import split_sentences
from zhiwen.tools.figures import figures
from zhiwen.tools.tokenize import tokenize

__all__ = [
    "SentenceCheck",
    "add_citations",
    "check_sentences",
    "cited_numbers",
    "drop_bad_citations",
    "has_words",
    "is_refusal",
    "relevance",
    "source_relevance",
    "text_terms",
    "topic_terms",
]

_CITE = re.compile(r"\s*\[(\d{1,3})\]")
# Phrases that always mean the model declined; and phrases that mean it only when the sources are their
# subject ("资料中未提及", "the context does not mention"): alone, or after "根据资料，", they are statements
# of fact ("年费不包含附属卡", "the fee does not include VAT"), which were refused as refusals.
# "不知道" declines only in the first person ("我不知道", or opening the answer): "他们很长一段时间里都不知道…"
# is an answer (cmrc2018-dev DEV_1969_QUERY_2), and was refused as the model's own refusal.
_REFUSAL = re.compile(
    r"(无法回答|无法从|没有找到|未找到|找不到(相关|答案|有关|该|这)|(^|我|我们|咱们|抱歉|对不起)[，,\s]*(也|并|真的|还)?不知道|"
    r"无法确定|资料中没有|"
    r"cannot (answer|find|determine)|can't (answer|find)|could not find|couldn't find|"
    r"no (relevant )?information (about|on|in|regarding)|no relevant information|"
    r"i don't know|unable to (answer|find|determine))",
    re.IGNORECASE,
)
_SOURCES_SAY_NOT = re.compile(
    r"((资料|文档|知识库|上下文|来源|所给(的)?(信息|内容)|提供的(信息|内容|资料))(中|里|内|里面|当中)?(并)?"
    r"(不包含|没有提供|未提供|没有相关|无相关)|"
    r"\b(sources?|documents?|context|knowledge base|passages?|(provided|given) (text|information))\b"
    r"\s+(do(es)?(n't| not)|did(n't| not))\s+(contain|provide|mention|include|say|specify|state|cover)|"
    r"\b(is|are)(n't| not) (mentioned|provided|specified|stated|available|given|included) in the "
    r"(sources?|documents?|context|knowledge base|passages?|provided|given))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SentenceCheck:
    """One answer sentence: its best supporting source (1-based, 0 = none) and support in [0, 1].

    ``scores[i]`` is the support by source ``i + 1``, to check the sources a sentence cites.
    """

    text: str
    start: int
    end: int
    support: float
    best: int
    cited: tuple[int, ...]
    numbers_ok: bool
    scores: tuple[float, ...] = ()

    @property
    def supported(self) -> bool:
        return self.best > 0 and self.numbers_ok


def cited_numbers(text: str) -> set[int]:
    """The source numbers ``text`` cites as ``[n]``."""
    return {int(m.group(1)) for m in _CITE.finditer(text)}


def _terms(text: str) -> set[str]:
    return set(tokenize(_CITE.sub("", text), "bigram"))


def _numbers(text: str) -> set[str]:
    return figures(_CITE.sub("", text))


def _words(terms: set[str]) -> set[str]:
    return {t for t in terms if not any(ch.isdigit() for ch in t)}


def _backing(terms: set[str], source_sentences: Sequence[list[set[str]]], cited: tuple[int, ...]) -> set[int]:
    """The sources a sentence's figures must come from: the one whose words (figures left out) match it best.

    Taken from any retrieved source, "the Gold card fee is 2000 yuan" passed on a Platinum passage's 2000:
    matched with its figures, both passages tie. Without them the Gold passage covers more of the sentence;
    where two cover it all ("白金卡" holds "金卡"), the one whose matching sentence adds fewest other words
    wins. A source the sentence cites counts too, if it matched as well as the best.
    """
    words = _words(terms)
    if not words:
        return set(range(len(source_sentences)))
    ranked: list[tuple[float, int]] = []  # (coverage, -extra words) of each source's best sentence
    for sentences in source_sentences:
        fits = [(len(words & s) / len(words), -len(_words(s) - words)) for s in sentences] or [(0.0, 0)]
        ranked.append(max(fits))
    top = max((r[0] for r in ranked), default=0.0)
    tied = {i for i, r in enumerate(ranked) if r[0] >= top - 1e-9}
    closest = max(ranked[i][1] for i in tied) if tied else 0
    return {i for i in tied if ranked[i][1] == closest} | {n - 1 for n in cited if n - 1 in tied}


_LEADING_CITES = re.compile(f"(?:{_CITE.pattern})+")  # markers, one after another


def answer_sentences(answer: str) -> list[tuple[int, int]]:
    """``split_sentences`` of an answer, with the ``[n]`` markers written after a sentence's full stop
    ("… in total. [1]", "…为300元。[1]") kept with that sentence: they cite it. Split at the stop, the
    sentence counted as uncited and ``add_citations`` gave it a second marker ("… in total. [1] [1]")."""
    spans: list[tuple[int, int]] = []
    for start, end in split_sentences(answer):
        lead = _LEADING_CITES.match(answer, start, end)
        if spans and lead:
            spans[-1] = (spans[-1][0], lead.end())
            start = lead.end()
        if answer[start:end].strip():
            spans.append((start, end))
    return spans


def check_sentences(answer: str, sources: Sequence[str], threshold: float = 0.6) -> list[SentenceCheck]:
    """Support of each answer sentence that has content words, against the numbered ``sources``."""
    source_terms = [_terms(s) for s in sources]
    source_sentences = [[_terms(s[a:b]) for a, b in split_sentences(s)] for s in sources]
    source_numbers = [figures(s, lenient=True) for s in sources]
    checks = []
    for start, end in answer_sentences(answer):
        text = answer[start:end]
        terms = _terms(text)
        if len(terms) < 2 and not _numbers(text):
            continue  # "好的。", "Yes." carry no claim to check
        scores = [len(terms & st) / max(len(terms), 1) for st in source_terms]
        best_score = max(scores, default=0.0)
        best = scores.index(best_score) + 1 if scores and best_score >= threshold else 0
        cited = tuple(int(m.group(1)) for m in _CITE.finditer(text))
        backing = _backing(terms, source_sentences, cited)
        numbers_ok = _numbers(text) <= set().union(*(source_numbers[i] for i in backing))
        checks.append(
            SentenceCheck(text.strip(), start, end, best_score, best, cited, numbers_ok, tuple(scores))
        )
    return checks


def drop_bad_citations(answer: str, checks: Sequence[SentenceCheck], n_sources: int) -> str:
    """``answer`` without the ``[n]`` markers that name no source, or a source not supporting their sentence.

    The model's own markers were shown as written, so a reader could follow "[3]" to nothing, or to a
    passage saying something else; ``add_citations`` then attributes the sentence afresh.
    """

    def keep(check: SentenceCheck | None) -> Callable[[re.Match[str]], str]:
        def marker(m: re.Match[str]) -> str:
            n = int(m.group(1))
            if not 1 <= n <= n_sources:
                return ""
            if check is not None and n != check.best and check.scores[n - 1] < 0.5:
                return ""
            return m.group(0)

        return marker

    out, pos = [], 0
    for c in sorted(checks, key=lambda c: c.start):
        out.append(_CITE.sub(keep(None), answer[pos : c.start]))
        out.append(_CITE.sub(keep(c), answer[c.start : c.end]))
        pos = c.end
    out.append(_CITE.sub(keep(None), answer[pos:]))
    return "".join(out)


def add_citations(answer: str, checks: Sequence[SentenceCheck]) -> str:
    """Insert ``[n]`` after each supported sentence that cites nothing, by attribution."""
    out, pos = [], 0
    for c in sorted(checks, key=lambda c: c.start):
        out.append(answer[pos : c.end])
        pos = c.end
        if c.supported and not c.cited:
            body = out[-1].rstrip()
            trailing = out[-1][len(body) :]
            # Put the marker before the sentence-final punctuation for Chinese, after it for English.
            if body and body[-1] in "。！？；":
                out[-1] = f"{body[:-1]}[{c.best}]{body[-1]}{trailing}"
            else:
                out[-1] = f"{body} [{c.best}]{trailing}"
    out.append(answer[pos:])
    return "".join(out)


# Saying something is not mentioned is about the text: with the sources named anywhere in the sentence
# ("根据所给资料，没有提到…") it is a refusal.
_NOT_MENTIONED = re.compile(
    r"(未提及|没有提及|没有提到|未提到|没有说明|未说明|没有记载|未记载|"
    r"do(es)?(n't| not) (mention|say|specify|state)|(is|are)(n't| not) (mentioned|specified|stated))",
    re.IGNORECASE,
)
_SOURCES_WORD = re.compile(
    r"(资料|文档|知识库|上下文|来源|所给|提供的信息|"
    r"\b(sources?|documents?|context|knowledge base|passages?|provided information|information provided)\b)",
    re.IGNORECASE,
)


def is_refusal(answer: str) -> bool:
    """The model said the sources do not hold the answer (not merely that something lacks something)."""
    head = answer[:300]
    if _REFUSAL.search(head) or _SOURCES_SAY_NOT.search(head):
        return True
    return any(
        _NOT_MENTIONED.search(head[a:b]) and _SOURCES_WORD.search(head[a:b]) for a, b in split_sentences(head)
    )


def relevance(question: str, answer: str, used_sources: Sequence[str]) -> float:
    """Share of the question's terms found in the answer or the sources it relies on."""
    q = _terms(question)
    if not q:
        return 1.0
    seen = _terms(answer).union(*(_terms(s) for s in used_sources)) if used_sources else _terms(answer)
    return len(q & seen) / len(q)


# Question words and function characters carry no topic: a source about the asked thing rarely repeats
# "什么", and bigrams across them ("费是" of "年费是什么") are noise. They are cut out before tokenizing.
# (English question words are BM25 stop words already, dropped by the tokenizer.)
_NOT_TOPIC = re.compile(
    r"什么时候|为什么|什么|哪些|哪个|哪里|哪一|哪年|哪位|多少|几个|怎么|怎样|如何|是谁|是否|有哪|谁|哪|几|"
    r"[的是了吗呢被在有和与及由将把对于其之吧啊]"
)


def topic_terms(question: str) -> set[str]:
    """The terms of ``question`` that name its topic (question words and function characters cut out)."""
    return _terms(_NOT_TOPIC.sub(" ", question))


def text_terms(text: str) -> set[str]:
    """The terms (words and character bigrams, citations left out) matched against ``topic_terms``."""
    return _terms(text)


def source_relevance(question: str, used_sources: Sequence[str]) -> float | None:
    """Share of the question's topic terms found in the sources the answer relies on (not the answer).

    ``relevance`` counts the answer's own words, and a small model restates the question, so an answer
    copied from a passage about something else still scores high there. Here only the supporting sources
    count: "硕塞是如何被提升为亲王的" answered from a passage about 守觉法亲王 scores low. None when there
    is nothing to measure (no supporting source, or a question of fewer than two topic terms).
    """
    asked = topic_terms(question)
    if len(asked) < 2 or not used_sources:
        return None
    seen = set().union(*(_terms(s) for s in used_sources))
    return len(asked & seen) / len(asked)


def has_words(text: str) -> bool:
    """Whether ``text`` says anything once its [n] markers are set aside (an answer of markers alone is empty)."""
    return re.search(r"\w", _CITE.sub("", text)) is not None
