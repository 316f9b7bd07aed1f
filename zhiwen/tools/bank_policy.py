"""The bank persona's answer policy, applied by the quality gate to what the model wrote.

The seed's banking prompt asks for numbered steps for procedures, a risk reminder whenever the answer concerns
moving money or investing, loan answers by product, eligibility, rate, process and notes, no link the customer
did not ask for, and a hand-over to a person (the knowledge base's hotline) when the assistant cannot help.
Saying so in the system prompt costs the embedded 0.5B model answers (an instruction it half-follows; see the
fence instruction in docs/evaluation.md), and a served model may ignore it, so the rules are enforced here,
deterministically, on the checked answer: the sentences the model wrote are kept word for word (they were
checked against the sources), only arranged, and the fixed texts added are the bank's, not the model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from zhiwen.tools.answer_safety import URL_PATTERN

__all__ = [
    "PolicyResult",
    "apply_policy",
    "handover",
    "question_kinds",
    "split_answer",
    "without_fixed_texts",
]

_I = re.IGNORECASE
_PROCEDURE = re.compile(
    r"(如何|怎么|怎样|怎么样)(才能)?(办理|申请|开通|开立|开户|注销|销户|挂失|补办|修改|重置|激活|绑定|解绑|转账|"
    r"汇款|还款|提现|取现|存款|取款|操作|设置|取消|变更|领取|预约|签约|解约|登录|找回)|流程|步骤|手续(?!费)|办理方式"
    r"|\bhow (do|can|should|would) (i|we|you|one)\b|\bhow to\b|\bwhat (are|is) the (steps?|process|procedure)\b"
    r"|\bsteps? (to|for)\b|\bprocedure\b",
    _I,
)
_MONEY = re.compile(
    r"转账|汇款|汇出|跨境汇|付款|提现|取现|\b(transfer|wire|remit|remittance|send money|sending money|payee)s?\b",
    _I,
)
_INVEST = re.compile(
    r"理财|基金|投资|股票|债券|贵金属|\b(invest|investing|investment|funds?|stocks?|bonds?|wealth management)\b",
    _I,
)
# In an answer, "funds" is as often a verb ("the loan funds a home"): only unambiguous words count there.
_INVEST_IN_ANSWER = re.compile(
    r"理财|基金|投资|股票|债券|\b(invest\w*|mutual funds?|index funds?|wealth management|stocks?|shares)\b",
    _I,
)
_LOAN = re.compile(r"贷(?!记)|借款|按揭|\b(loan|mortgage|borrow|borrowing)s?\b", _I)
_LINK_ASKED = re.compile(
    r"网址|链接|官网|网站|网页|\b(website|web ?site|link|url|homepage|web page|online)s?\b", _I
)
_URL = re.compile(rf"\s*\(?{URL_PATTERN}\)?", _I)  # with the space and brackets around it
# What is left of a sentence once its link is gone, when it only pointed at the link ("See  for details.").
_POINTER = re.compile(
    r"^\W*(see|visit|go to|open|click|log ?in( at)?|details?|more|for details|详见|请?访问|请?登录|"
    r"点击|请到|参见|请见|更多|详情)[\s\W]*(for (more )?(details|information))?\W*(\[\d+\]\W*)*$",
    _I,
)
_DANGLING = re.compile(r"(为|是|：|:|在|访问|登录|登陆|\b(is|are|at|visit|see|to|on|via)\b)\s*$", _I)
_NUMBERED = re.compile(r"^\s*(\d+[.、)]|第[一二三四五六七八九十\d]+步|[-*•])", re.MULTILINE)
# A sentence: up to its end mark (a full stop that is not a decimal point), with the [n] markers after it.
_SENTENCE = re.compile(r"[^。！？!?\n.]+(?:\.\d[^。！？!?\n.]*)*(?:[。！？!?]|\.(?!\d))?(?:\s*\[\d{1,3}\])*")

_REMINDER = {
    "money": {
        "zh": "温馨提示：转账汇款前请核实收款人信息；银行不会向您索要密码或验证码，谨防诈骗。",
        "en": "Reminder: check the payee's details before you send money; the bank never asks for your password "
        "or codes.",
    },
    "investment": {
        "zh": "风险提示：理财非存款，产品有风险，投资须谨慎。",
        "en": "Risk reminder: investments are not deposits and may lose value; invest with care.",
    },
}
_LOAN_SECTIONS = {
    # (label zh, label en, words that put a sentence in the section); a sentence matching none is "product"
    "eligibility": ("申请条件", "Eligibility", r"条件|年满|周岁|申请人|资格|要求|需具备|需提供|材料|证明|收入|"
                    r"\b(eligib\w*|requirements?|must be|aged?|applicants?|documents?|income|proof)\b"),
    "rate": ("利率", "Rate", r"利率|年化|利息|费率|LPR|基点|%|\b(rates?|interest|apr|fees?)\b"),
    "process": ("办理流程", "Process", r"申请|办理|提交|审批|放款|流程|步骤|网点|手机银行|\b(apply|submit|approv\w*|"
                r"disburs\w*|process|steps?|branch|app)\b"),
    "notes": ("注意事项", "Notes", r"注意|提示|提醒|逾期|罚息|提前还款|风险|\b(note|notice|overdue|penalt\w*|"
              r"early repayment|risk)\b"),
}  # fmt: skip
_PRODUCT = ("产品", "Product")
_HANDOVER = {
    "zh": (
        "如需进一步帮助，请拨打官方客服热线 {hotline} 转人工服务。",
        "如需进一步帮助，请联系人工客服或前往网点咨询。",
    ),
    "en": (
        "For more help, call the official hotline {hotline} to speak to a person.",
        "For more help, contact a customer service agent or visit a branch.",
    ),
}


@dataclass
class PolicyResult:
    """The answer after the policy, what was applied (for the quality record), and what was added at the end
    (a reader who watched the draft stream needs to see it)."""

    answer: str
    applied: list[str] = field(default_factory=list)
    appendix: str = ""


def question_kinds(question: str, answer: str = "") -> set[str]:
    """What the policy cares about in a question: procedure, money, investment, loan, link_asked."""
    kinds = {
        name
        for name, pattern in (
            ("procedure", _PROCEDURE),
            ("money", _MONEY),
            ("investment", _INVEST),
            ("loan", _LOAN),
            ("link_asked", _LINK_ASKED),
        )
        if pattern.search(question)
    }
    if _INVEST_IN_ANSWER.search(
        answer
    ):  # an answer that recommends a fund concerns investing, whatever was asked
        kinds.add("investment")
    return kinds


def split_answer(text: str) -> list[str]:
    """The answer's sentences, each with the citation markers that follow it; decimals are not cut."""
    return [s.strip() for s in _SENTENCE.findall(text) if re.search(r"\w", s)]


def handover(language: str, hotline: str = "") -> str:
    """The sentence that hands the customer over to a person: the hotline when the knowledge base has one."""
    with_number, without = _HANDOVER.get(language, _HANDOVER["en"])
    return with_number.format(hotline=hotline) if hotline else without


def _numbered(sentences: list[str]) -> str:
    return "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, start=1))


def _loan_sections(sentences: list[str], language: str) -> str | None:
    """The sentences under product / eligibility / rate / process / notes labels, in that order; None unless
    they span at least two sections (a one-section answer reads better as it is)."""
    zh = language == "zh"
    groups: dict[str, list[str]] = {"product": []}
    for sentence in sentences:
        section = next(
            (name for name, (_, _, words) in _LOAN_SECTIONS.items() if re.search(words, sentence, _I)),
            "product",
        )
        groups.setdefault(section, []).append(sentence)
    filled = [name for name in ("product", *_LOAN_SECTIONS) if groups.get(name)]
    if len(filled) < 2:
        return None
    lines = []
    for name in filled:
        label = _PRODUCT[0 if zh else 1] if name == "product" else _LOAN_SECTIONS[name][0 if zh else 1]
        lines.append(f"{label}{'：' if zh else ': '}{('' if zh else ' ').join(groups[name])}")
    return "\n".join(lines)


def _without_links(text: str, language: str) -> str:
    """``text`` without its links; a sentence that only pointed at one, or had one as its object ("官方网站为
    <link>", "apply at <link>"), goes with it."""
    marked = _URL.sub("\x00", text)  # the link's dots must not split sentences
    kept = []
    for part in split_answer(marked):
        if "\x00" in part and _DANGLING.search(part.split("\x00")[0]):
            continue
        part = part.replace("\x00", "").strip()
        if not _POINTER.match(part):
            kept.append(part)
    return ("" if language == "zh" else " ").join(kept)


def apply_policy(answer: str, question: str, language: str) -> PolicyResult:
    """The bank's policy applied to a checked answer to ``question`` (see the module docstring)."""
    kinds = question_kinds(question, answer)
    result = PolicyResult(answer)
    if "link_asked" not in kinds and _URL.search(result.answer):
        result.answer = _without_links(result.answer, language)
        result.applied.append("removed a link the customer did not ask for")
    sentences = split_answer(result.answer)
    if "loan" in kinds and len(sentences) >= 3:
        sectioned = _loan_sections(sentences, language)
        if sectioned is not None:
            result.answer = sectioned
            result.applied.append("loan answer by product, eligibility, rate, process and notes")
    elif "procedure" in kinds and len(sentences) >= 2 and not _NUMBERED.search(result.answer):
        result.answer = _numbered(sentences)
        result.applied.append("procedure as numbered steps")
    reminders = [
        _REMINDER[kind].get(language, _REMINDER[kind]["en"])
        for kind in ("money", "investment")
        if kind in kinds
    ]
    reminders = [r for r in reminders if r not in result.answer]
    if reminders:
        result.appendix = "\n".join(reminders)
        result.answer = f"{result.answer}\n\n{result.appendix}"
        result.applied.append("risk reminder")
    return result


_FIXED = tuple(
    text
    for group in (
        *_REMINDER.values(),
        *({"zh": z, "en": e} for z, e in zip(*_HANDOVER.values(), strict=True)),
    )
    for text in group.values()
    if "{hotline}" not in text
)
_HANDOVER_WITH_NUMBER = re.compile(
    "|".join(re.escape(t).replace(re.escape("{hotline}"), r".+?") for z, e in [_HANDOVER["zh"], _HANDOVER["en"]]
             for t in (z, e) if "{hotline}" in t)
)  # fmt: skip


def without_fixed_texts(answer: str) -> str:
    """``answer`` without the paragraphs the policy added (risk reminders, the hand-over): what the model said.

    The conversation history sent back to the model leaves them out (they are the bank's words, not the
    answer's, and cost prompt tokens every turn); clients comparing streamed text with the answer use it too.
    """
    paragraphs = [p for p in answer.split("\n\n") if p.strip()]
    kept = [
        p
        for p in paragraphs
        if not all(line in _FIXED or _HANDOVER_WITH_NUMBER.fullmatch(line) for line in p.splitlines())
    ]
    return "\n\n".join(kept)
