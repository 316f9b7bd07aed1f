"""Who is asking what: intent label, language, and a standalone query (follow-ups condensed).

Rules decide what they can (greetings, unsafe requests, empty input) so those turns cost no LLM call;
a follow-up is rewritten by the LLM (tagged ``nostream``), with a rule-based fallback when the call
fails or its output is unusable. This node never fails the turn.
"""

from __future__ import annotations

import re
import time
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Intent, State
from zhiwen.nodes._common import achat_model, context_of, history, last_user_text
from zhiwen.nodes.prompts import CONDENSE_SYSTEM
from zhiwen.tools.fence import inert_control_tokens
from zhiwen.tools.language import detect_language
from zhiwen.tools.llm import message_text, storable_text
from zhiwen.tools.think_tags import strip_think
from zhiwen.tools.tokenize import tokenize
from zhiwen.tools.unsafe_questions import asks_for_unsafe

__all__ = ["classify", "track_intent"]

MAX_QUERY_CHARS = 2000

_GREETING = re.compile(
    r"^\s*(你好|您好|嗨|哈喽|早上好|下午好|晚上好|谢谢|多谢|再见|拜拜|你是谁|你能做什么|"
    r"hi|hello|hey|good (morning|afternoon|evening)|thanks?( you)?|bye|goodbye|who are you|what can you do)"
    r"[\s!！。.?？,，~]*(zhiwen|知问)?[\s!！。.?？]*$",
    re.IGNORECASE,
)
_FOLLOWUP = re.compile(
    r"(^(那|那么|还有|另外|以及|and|also|what about|how about)|(?<!其)它|这个|那个|这款|该产品|(?<!尤)其(?![他它余实中次])|上述|"
    r"另一(张|个|款|种|家|项)|分别|\bthe other (one|card|loan|account|product)s?\b|"
    r"\b(it|its|they|them|their|this|that|these|those)\b)",
    re.IGNORECASE,
)


# Requests for another kind of work than answering from documents: writing (poems, stories, essays, code),
# jokes and games, translation, the weather. Only the plain imperative forms, at the start of the message, so
# a knowledge question that mentions such a word ("翻译费是多少", "what did the poem say") stays a question.
# Measured on every question of the evaluation sets: none refused (docs/evaluation.md).
_OTHER_TASK = re.compile(
    r"^\s*(please\s+)?((can|could|would) you\s+)?(please\s+)?("
    r"(write|compose|draft)\s+(me\s+)?(a|an|some|the)?\s*(short\s+|funny\s+|little\s+)?"
    r"(poem|story|song|essay|joke|haiku|limerick|novel|love letter|program|script|python|code)\b"
    r"|tell\s+me\s+(a|another)\s+(joke|story|riddle)"
    r"|translate\s+(this|the following|that|it|into|to)\b"
    r"|let'?s\s+play\b"
    r")"
    r"|^\s*(请你?|麻烦你?)?(帮我|给我|替我)?(写|作|编|创作)(一|几)?(首|篇|个|段|份|则)?(?:[^，。？！?!,.\s]{0,12}的)?(诗|歌|故事|作文|小说|笑话|代码|程序|脚本|情书)"
    r"|^\s*(请你?)?(讲|说)(一|几)?个?笑话"
    r"|^\s*(请你?|麻烦你?)?(帮我)?翻译(一下|下面|这段|这句|成|为)"
    r"|^\s*(我们)?来?玩(个|一个)?游戏"
    r"|^\s*(今天|明天|现在)?(的)?天气(怎么样|如何)"
    r"|^\s*(what('s| is| will be) the weather|how('s| is) the weather|will it rain)\b"
    # Tips on which shares will rise: no knowledge base answers them, and a bank may not.
    r"|(推荐|荐|说)(几|一|两)?(只|支|个)?(能涨|会涨|要涨|好)?的?(股票|个股)|哪(只|支|些)股票.{0,6}(涨|买)"
    r"|\b(give me|any|some)\s+(hot\s+)?stock (tips|picks)\b|\bwhich stocks? (should i|to|will)\b",
    re.IGNORECASE,
)


def _fragment(text: str) -> bool:
    """Too short to stand alone: "利率呢？", "and fees?" (but "转账手续费是多少" is a whole question)."""
    words = re.findall(r"[A-Za-z]+|[\u4e00-\u9fff]", text)
    return sum(2 if w.isascii() else 1 for w in words) <= 4  # a Latin word counts as two characters


def classify(text: str, has_history: bool) -> tuple[str, str]:
    """Rule-based (label, reason) of a user message."""
    stripped = text.strip()
    if not stripped:
        return "empty", "the message is empty"
    if asks_for_unsafe(stripped):
        return "unsafe", "asks for credentials or other people's data"
    if _GREETING.match(stripped):
        return "greeting", "greeting or small talk"
    if _OTHER_TASK.search(stripped):
        return "out_of_scope", "asks for another kind of work than answering from the knowledge base"
    if has_history and (_FOLLOWUP.search(stripped) or _fragment(stripped)):
        return "followup", "refers back to the conversation"
    return "question", "knowledge question"


_PRONOUNS = frozenset(
    [
        "它",
        "它们",
        "这个",
        "那个",
        "这款",
        "那",
        "那么",
        "还有",
        "另外",
        "呢",
        "吗",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
    ]
)


def _keeps_new_terms(message: str, rewritten: str) -> bool:
    """A rewrite must keep what the new message adds (its non-pronoun terms), or it changed the question."""
    terms = [t for t in tokenize(message, "jieba") if t not in _PRONOUNS]
    if not terms:
        return True
    kept = set(tokenize(rewritten, "search+bigram"))
    return sum(t in kept for t in terms) / len(terms) >= 0.5


_FIGURE = re.compile(r"\d+(?:[.,]\d+)*\s*(个月|年|月|日|号|天|周|%|％|元|万元|万)?")
_KIND = {"个月": "time", "年": "time", "月": "time", "日": "time", "号": "time", "天": "time", "周": "time",
         "%": "rate", "％": "rate", "元": "money", "万元": "money", "万": "money"}  # fmt: skip


def _fallback_condense(question: str, previous: str) -> str:
    """The previous question with the new message after it; a figure the new message brings replaces the old
    ones of its kind ("2023年首付比例是多少？" then "那2024年呢？" asks about 2024 only; an amount stays)."""
    if not previous:
        return question
    kinds = {_KIND.get(m.group(1) or "", "") for m in _FIGURE.finditer(question)}
    if kinds:
        previous = _FIGURE.sub(
            lambda m: "" if _KIND.get(m.group(1) or "", "") in kinds else m.group(0), previous
        )
    return f"{previous} {question}".strip()


async def track_intent(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    start = time.perf_counter()
    ctx = context_of(runtime)
    messages = state.get("messages", [])
    text = last_user_text(messages)[:MAX_QUERY_CHARS]
    past = history(messages, ctx.max_history_tokens)
    label, reason = classify(text, bool(past))
    before = state.get("intent") if past else None  # the last turn's, on a thread
    spoken = before["language"] if before else "zh"  # "2024?" keeps the conversation's language
    language = ctx.language if ctx.language != "auto" else detect_language(text, default=spoken)
    query, method = text.strip(), "rules"
    if label == "followup":
        # Build on the last question as it was understood (condensed), not as typed: "那利率呢？" then
        # "它的额度呢？" kept only "那利率呢？" and lost the product both refer to.
        typed = next((m.content for m in reversed(past) if isinstance(m, HumanMessage)), "")
        understood = before["query"] if before and before.get("label") in ("question", "followup") else ""
        previous = understood or typed
        query, method = _fallback_condense(text.strip(), str(previous)), "rules-fallback"
        if ctx.condense_with_llm:
            try:
                model = (await achat_model(ctx, max_tokens=80, filtered=False)).with_config(tags=["nostream"])
                convo = "\n".join(
                    f"{'User' if isinstance(m, HumanMessage) else 'Assistant'}: {m.content}"
                    for m in past[-4:]
                )
                result = await model.ainvoke(
                    [
                        SystemMessage(CONDENSE_SYSTEM),
                        HumanMessage(inert_control_tokens(f"{convo}\nUser: {text}\n\nStandalone question:")),
                    ]
                )
                lines = strip_think(storable_text(message_text(result))).answer.strip().splitlines()
                candidate = lines[0].strip().strip('"“”').strip() if lines else ""
                if 2 <= len(candidate) <= 300 and _keeps_new_terms(text, candidate):
                    query, method = candidate, "llm"
            except Exception:  # any failure of the helper call falls back to rules; the turn goes on
                pass
    intent: Intent = {
        "label": label,
        "language": language,
        "query": query,
        "reason": reason,
        "method": method,
    }
    return {
        "intent": intent,
        "attempt": 0,
        "strategy": "default",
        "cache_key": "",
        "sources": [],
        "draft": "",
        "draft_finish": "",
        "reasoning": "",
        "model_reasoning": "",
        "timings": {"__reset__": 0.0, "intent": time.perf_counter() - start},
        "quality": {},
        "answer": "",
    }
