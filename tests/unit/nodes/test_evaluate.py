"""evaluate: the quality gate's pass / retry / refuse verdicts and what each one writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Source, State
from zhiwen.nodes._common import set_model_override
from zhiwen.nodes.evaluate import evaluate, next_strategy
from zhiwen.nodes.prompts import no_answer
from zhiwen.tools.bank_policy import handover

BOTH_TOP = {"bm25": {"rank": 1.0, "score": 3.0}, "dense": {"rank": 2.0, "score": 0.9}}


def _source(n: int, text: str, legs: dict[str, Any] | None = None) -> Source:
    return {
        "n": n, "id": f"c{n}", "doc_id": f"d{n}", "text": text, "score": 1.0 / n,
        "source": f"/kb/{n}.md", "title": "", "metadata": {"legs": BOTH_TOP if legs is None else legs},
    }  # fmt: skip


ZH = [
    _source(1, "金卡信用卡的年费为每年三百元人民币。首年免收年费。"),
    _source(2, "安心贷最高额度为二十万元。"),
]
EN = [_source(1, "International wire transfers take three business days. The fee is 15 dollars.")]
UNGROUNDED_ZH = "火星上的银行营业时间为每天早上八点。宇航员可以在太空办理开户。"


def _state(draft: str, sources: list[Source], language: str = "zh", **extra: Any) -> State:
    query = "金卡的年费是多少？" if language == "zh" else "How long do wire transfers take?"
    label = extra.pop("label", "question")
    intent = {"label": label, "language": language, "query": query, "reason": "", "method": "rules"}
    return {"messages": [], "intent": intent, "draft": draft, "sources": sources, **extra}  # type: ignore[typeddict-item]


def _run(state: State, **ctx: Any) -> dict[str, Any]:
    """The gate on ``state``; without its quote fall-back unless asked (most tests here are about refusing)."""
    ctx.setdefault("quote_fallback", False)
    return asyncio.run(evaluate(state, Runtime(context=Context(**ctx))))


@pytest.fixture
def model_override() -> Iterator[None]:
    yield
    set_model_override(None)


def test_pass_inserts_attributed_citations_zh() -> None:
    out = _run(_state("金卡信用卡的年费为每年三百元人民币。安心贷最高额度为二十万元。", ZH))
    assert out["answer"] == "金卡信用卡的年费为每年三百元人民币[1]。安心贷最高额度为二十万元[2]。"
    q = out["quality"]
    assert q["verdict"] == "pass"
    assert (q["grounded"], q["citations_valid"], q["think_leak"], q["model_refused"]) == (
        1.0,
        True,
        False,
        False,
    )
    assert q["attempts"] == 1 and q["reasons"] == []
    assert [s["source"] for s in q["sentences"]] == [1, 2]
    assert [m.content for m in out["messages"]] == [out["answer"]]
    assert out["timings"]["evaluation"] >= 0


def test_pass_in_english_cites_after_the_sentence_and_keeps_model_citations() -> None:
    out = _run(_state("International wire transfers take three business days.", EN, "en"))
    assert out["answer"].startswith("International wire transfers take three business days. [1]\n\n")
    assert out["answer"].endswith(out["quality"]["policy_appendix"]), (
        "a transfer: the bank's reminder follows"
    )
    cited = _run(_state("International wire transfers take three business days [1].", EN, "en"))
    assert cited["answer"].startswith("International wire transfers take three business days [1].\n\n")
    assert cited["quality"]["citations_valid"] is True


def test_citation_to_a_missing_source_is_invalid() -> None:
    out = _run(_state("International wire transfers take three business days [4].", EN, "en"))
    assert out["quality"]["citations_valid"] is False


def test_citation_to_a_source_that_does_not_support_the_sentence_is_invalid() -> None:
    """Regression: any citation in range passed as long as some source supported the sentence."""
    out = _run(_state("金卡信用卡的年费为每年三百元人民币[2]。", ZH))
    assert out["quality"]["citations_valid"] is False
    assert _run(_state("金卡信用卡的年费为每年三百元人民币[1]。", ZH))["quality"]["citations_valid"] is True


def test_ungrounded_answer_retries_with_best_chunk_when_retrieval_is_confident() -> None:
    out = _run(_state(UNGROUNDED_ZH, ZH))
    assert out["quality"]["verdict"] == "retry"
    assert (out["attempt"], out["strategy"]) == (1, "best_chunk")
    assert "answer" not in out and "messages" not in out  # nothing reaches the user yet
    assert out["quality"]["grounded"] == 0.0
    assert any("sentences supported" in r for r in out["quality"]["reasons"])


def test_second_retry_widens_the_context() -> None:
    assert next_strategy(0) == "best_chunk" and next_strategy(1) == "wider"
    out = _run(_state(UNGROUNDED_ZH, ZH, attempt=1), max_retries=2)
    assert (out["quality"]["verdict"], out["strategy"], out["attempt"]) == ("retry", "wider", 2)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_refuses_after_max_retries_in_the_users_language(language: str) -> None:
    draft = UNGROUNDED_ZH if language == "zh" else "Banks on Mars open at eight every morning."
    out = _run(_state(draft, ZH if language == "zh" else EN, language, attempt=1), max_retries=1)
    assert out["quality"]["verdict"] == "refuse"
    assert out["quality"]["attempts"] == 2
    expected = f"{no_answer(language)}\n\n{handover(language)}"  # the bank persona hands over to a person
    assert out["answer"] == expected
    assert [m.content for m in out["messages"]] == [expected]


def test_unconfident_retrieval_refuses_without_retrying() -> None:
    far = [
        _source(1, ZH[0]["text"], {"bm25": {"rank": 9.0, "score": 0.1}, "dense": {"rank": 1.0, "score": 0.8}})
    ]
    assert _run(_state(UNGROUNDED_ZH, far))["quality"]["verdict"] == "refuse"


def test_hybrid_top_chunk_found_by_one_leg_only_is_not_confident() -> None:
    """Regression: a hybrid hit that BM25 never matched used to count as confident."""
    dense_only = [_source(1, ZH[0]["text"], {"dense": {"rank": 1.0, "score": 0.8}})]
    assert _run(_state(UNGROUNDED_ZH, dense_only))["quality"]["verdict"] == "refuse"
    bm25_only = [_source(1, ZH[0]["text"], {"bm25": {"rank": 1.0, "score": 2.0}})]
    out = _run(_state(UNGROUNDED_ZH, bm25_only), retrieval_mode="bm25")
    assert out["quality"]["verdict"] == "retry"  # in bm25 mode one leg is all that ran


def test_no_sources_refuses() -> None:
    out = _run(_state("金卡信用卡的年费为每年三百元人民币。", []))
    assert out["quality"]["verdict"] == "refuse"
    assert "no sources retrieved" in out["quality"]["reasons"]


def test_invented_figure_is_not_supported() -> None:
    out = _run(_state("金卡信用卡的年费为每年500元人民币。", ZH, attempt=1))
    assert out["quality"]["verdict"] == "refuse"
    assert out["quality"]["sentences"][0]["numbers_ok"] is False


def test_model_refusal_is_recognised() -> None:
    out = _run(_state("知识库中没有找到相关信息。", ZH))
    assert out["quality"]["model_refused"] is True
    assert out["quality"]["verdict"] == "retry"
    assert "the model said the sources do not hold the answer" in out["quality"]["reasons"]


def test_think_leak_is_flagged_and_never_shown() -> None:
    draft = "金卡信用卡的年费为每年三百元人民币。</think>"
    refused = _run(_state(draft, ZH, attempt=1))
    assert refused["quality"]["think_leak"] is True
    assert "think text leaked into the answer" in refused["quality"]["reasons"]
    assert refused["quality"]["verdict"] == "refuse"
    unchecked = _run(_state(draft, ZH), quality_gate=False)
    assert unchecked["quality"]["verdict"] == "unchecked"
    assert "think>" not in unchecked["answer"] and "三百元" in unchecked["answer"]


@pytest.mark.parametrize("draft", ["<THINK>先查年费</THINK>金卡信用卡的年费为每年三百元人民币。",
                                   "金卡信用卡的年费为每年三百元人民币。< /Think >"])  # fmt: skip
def test_a_think_tag_in_any_letter_case_is_a_leak(draft: str) -> None:
    """ "<THINK>plan</THINK>answer" passed the gate, its reasoning in the answer and the thread."""
    out = _run(_state(draft, ZH, attempt=1))
    assert out["quality"]["think_leak"] is True and out["quality"]["verdict"] == "refuse"
    unchecked = _run(_state(draft, ZH), quality_gate=False)
    assert "think" not in unchecked["answer"].lower(), unchecked["answer"]


def test_scaffold_echo_is_caught() -> None:
    draft = "资料：[1] 金卡信用卡的年费为每年三百元人民币。问题：金卡的年费是多少？"
    out = _run(_state(draft, ZH, attempt=1))
    assert "the answer repeats the prompt instead of answering" in out["quality"]["reasons"]
    assert out["quality"]["verdict"] == "refuse"


def test_quality_gate_off_passes_the_draft_through_unchecked() -> None:
    out = _run(_state(UNGROUNDED_ZH, ZH), quality_gate=False)
    assert out["quality"]["verdict"] == "unchecked"
    assert out["answer"] == UNGROUNDED_ZH  # nothing supported, so no citations added
    assert out["quality"]["grounded"] == 0.0
    assert [m.content for m in out["messages"]] == [UNGROUNDED_ZH]


def test_grounded_answer_in_another_language_still_passes() -> None:
    out = _run(_state("International wire transfers take three business days.", EN, "zh"))
    q = out["quality"]
    assert q["language_ok"] is False
    assert q["verdict"] == "pass"


def test_greeting_passes_without_checks() -> None:
    out = _run(_state("你好！我是知问，可以回答银行业务问题。", [], label="greeting"))
    assert out["quality"] == {
        "verdict": "pass",
        "think_leak": False,
        "truncated": False,
        "attempts": 1,
        "reasons": ["small talk"],
    }
    assert out["answer"] == "你好！我是知问，可以回答银行业务问题。"


@pytest.mark.parametrize(("reply", "verdict"), [("NO", "retry"), ("YES", "pass")])
def test_llm_judge_can_veto_a_passing_answer(model_override: None, reply: str, verdict: str) -> None:
    set_model_override(GenericFakeChatModel(messages=iter([AIMessage(reply)])))
    out = _run(_state("金卡信用卡的年费为每年三百元人民币。", ZH), llm_judge=True)
    assert out["quality"]["verdict"] == verdict
    assert ("the LLM judge found unsupported claims" in out["quality"]["reasons"]) is (reply == "NO")


def test_an_answer_about_another_year_is_refused_and_the_check_can_be_turned_off() -> None:
    # Every figure of the answer is in the source, so lexical grounding alone passes it.
    sources = [
        _source(1, "宝马集团2022年全球销量为240万辆。纯电动车型表现亮眼。其中2021年推出的iX销量最好。")
    ]
    state = _state("2021年宝马全球销量为240万辆。", sources)
    state["intent"]["query"] = "2021年宝马全球销量？"
    out = _run(state, max_retries=0)
    assert out["quality"]["verdict"] == "refuse"
    assert out["quality"]["anchored"] is False
    assert any("numbers or codes the question asks about" in r for r in out["quality"]["reasons"])
    off = _run(state, max_retries=0, anchor_check=False)
    assert off["quality"]["verdict"] == "pass" and off["quality"]["anchored"] is None


def test_an_answer_stated_for_the_asked_year_passes_the_anchor_check() -> None:
    sources = [_source(1, "宝马集团2021年全球销量为252万辆，同比增长8.4%。")]
    state = _state("2021年宝马全球销量为252万辆。", sources)
    state["intent"]["query"] = "2021年宝马全球销量？"
    out = _run(state)
    assert out["quality"]["verdict"] == "pass" and out["quality"]["anchored"] is True


def test_a_figure_taken_from_a_sentence_about_something_else_is_refused() -> None:
    hours = "本行网点营业时间为9点至17点。周末照常营业。自助设备24小时开放。金卡的年费为每年300元。"
    state = _state("金卡的年费为每年24元。", [_source(1, hours)])
    state["intent"]["query"] = "金卡的年费是多少？"
    out = _run(state, max_retries=0, quote_fallback=False)
    assert out["quality"]["verdict"] == "refuse" and out["quality"]["figures_on_topic"] is False
    assert any("states the answer's figures" in r for r in out["quality"]["reasons"])
    right = _run(_state("金卡的年费为每年300元。", [_source(1, hours)]) | {"intent": state["intent"]})
    assert right["quality"]["verdict"] == "pass" and right["quality"]["figures_on_topic"] is True
    off = _run(state, max_retries=0, anchor_check=False)
    assert off["quality"]["figures_on_topic"] is None


def test_an_answer_from_an_off_topic_source_is_refused_when_source_relevance_is_required() -> None:
    # Every sentence is copied from source 2 (grounded), but source 2 is about the loan, not the card's fee.
    state = _state("安心贷最高额度为二十万元。", ZH)
    state["intent"]["query"] = "金卡信用卡的年费是多少？"
    default = _run(state, max_retries=0)
    assert default["quality"]["verdict"] == "pass"  # off by default: measured and reported only
    measured = default["quality"]["source_relevance"]
    assert measured is not None and measured < 0.3
    strict = _run(state, max_retries=0, source_relevance_threshold=0.4)
    assert strict["quality"]["verdict"] == "refuse"
    assert any("of the question's topic terms" in r for r in strict["quality"]["reasons"])
    on_topic = _run(_state("金卡信用卡的年费为每年三百元人民币。", ZH), source_relevance_threshold=0.4)
    assert on_topic["quality"]["verdict"] == "pass" and on_topic["quality"]["source_relevance"] >= 0.4


def test_a_draft_cut_at_max_tokens_is_reported_truncated() -> None:
    state = _state("International wire transfers take three business days.", EN, "en")
    assert _run(state)["quality"]["truncated"] is False
    assert _run({**state, "draft_finish": "length"})["quality"]["truncated"] is True


def test_a_passed_answer_never_shows_a_marker_naming_no_source() -> None:
    out = _run(_state("International wire transfers take three business days [4].", EN, "en"))
    assert out["quality"]["verdict"] == "pass" and out["quality"]["citations_valid"] is False
    assert "[4]" not in out["answer"] and "[1]" in out["answer"]


def test_when_the_gate_refuses_it_quotes_the_source_sentence_that_states_what_was_asked() -> None:
    out = _run(_state("金卡信用卡的年费为每年500元人民币。", ZH, attempt=1), quote_fallback=True)
    assert out["quality"]["verdict"] == "quote"
    assert out["quality"]["quote"] == {"source": 1, "coverage": 1.0}
    assert (
        out["answer"]
        == f"资料中与您的问题最相关的原文：「金卡信用卡的年费为每年三百元人民币。」[1]\n\n{handover('zh')}"
    )
    assert "answered with the source sentence closest to the question" in out["quality"]["reasons"]
    general = _run(
        _state("金卡信用卡的年费为每年500元人民币。", ZH, attempt=1), quote_fallback=True, persona="general"
    )
    assert general["answer"] == "资料中与您的问题最相关的原文：「金卡信用卡的年费为每年三百元人民币。」[1]"


def test_after_the_models_own_refusal_a_quotable_sentence_is_quoted_before_any_retry() -> None:
    own = _run(_state("知识库中没有找到相关信息。", ZH), quote_fallback=True)
    assert own["quality"]["verdict"] == "quote" and own["quality"]["attempts"] == 1
    assert "金卡信用卡的年费为每年三百元人民币。" in own["answer"]
    nothing_to_quote = _run(
        _state("知识库中没有找到相关信息。", [_source(1, "安心贷最高额度为二十万元。")]), quote_fallback=True
    )
    assert nothing_to_quote["quality"]["verdict"] == "retry", "without a quote the model is asked again"
    wrong_draft = _run(_state("金卡信用卡的年费为每年500元人民币。", ZH), quote_fallback=True)
    assert wrong_draft["quality"]["verdict"] == "retry", "a draft the gate stopped is retried before quoting"


def test_no_quote_when_no_sentence_states_what_was_asked_or_it_is_unsafe() -> None:
    off_topic = [_source(1, "安心贷最高额度为二十万元。")]
    out = _run(_state(UNGROUNDED_ZH, off_topic, attempt=1), quote_fallback=True)
    assert out["quality"]["verdict"] == "refuse"
    phishing = [_source(1, "金卡的年费请登录 http://evil.example/login 输入密码查询。")]
    out = _run(_state(UNGROUNDED_ZH, phishing, attempt=1), quote_fallback=True)
    assert out["quality"]["verdict"] == "refuse" and "evil.example" not in out["answer"]
    assert (
        _run(_state("金卡信用卡的年费为每年500元人民币。", [], attempt=1), quote_fallback=True)["quality"][
            "verdict"
        ]
        == "refuse"
    )
