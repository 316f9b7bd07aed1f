"""The whole turn graph with fake chat models and a tiny real knowledge base: paths, threads, bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from zhiwen.errors import LLMUnavailable
from zhiwen.graph.builder import build, graph
from zhiwen.graph.context import Context
from zhiwen.nodes.prompts import CHITCHAT_SYSTEM, SYSTEM, no_answer, refusal
from zhiwen.nodes.track_intent import MAX_QUERY_CHARS
from zhiwen.settings import Settings
from zhiwen.tools.bank_policy import handover
from zhiwen.tools.language import approx_tokens
from zhiwen.turns import TurnEvent, stream_turn

FakeModel = Callable[..., Any]  # the ``fake_model`` fixture (tests/unit/graph/conftest.py)

WIRE_Q = "How long do international wire transfers take?"
WIRE_A = "International wire transfers take three business days."
UNREACHABLE = "http://127.0.0.1:9/v1"


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


async def _arun(
    g: Any, inputs: dict[str, Any], ctx: Context, config: RunnableConfig | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The output state and the nodes run, in order."""
    final: dict[str, Any] = {}
    nodes: list[str] = []
    async for mode, data in g.astream(inputs, config, context=ctx, stream_mode=["updates", "values"]):
        if mode == "updates":
            nodes += list(data)
        else:
            final = data
    return final, nodes


def _run(
    inputs: dict[str, Any], ctx: Context, g: Any = graph, config: RunnableConfig | None = None
) -> tuple[dict[str, Any], list[str]]:
    return asyncio.run(_arun(g, inputs, ctx, config))


def _ask(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def test_greeting_goes_straight_to_the_model(tiny_kb: str, fake_model: FakeModel) -> None:
    model = fake_model("你好！我是知问，可以回答银行业务问题。")
    out, nodes = _run(_ask("你好"), Context(kb=tiny_kb))
    assert nodes == ["track_intent", "generate", "strip_think", "evaluate"]  # no retrieval
    assert out["intent"]["label"] == "greeting"
    assert out["sources"] == []
    assert out["answer"] == "你好！我是知问，可以回答银行业务问题。"
    assert out["quality"]["verdict"] == "pass"
    (call,) = model.calls
    assert call[0].content == CHITCHAT_SYSTEM["zh"]


def test_question_path_returns_answer_sources_quality_intent(tiny_kb: str, fake_model: FakeModel) -> None:
    model = fake_model(WIRE_A, WIRE_A)
    out, nodes = _run(_ask(WIRE_Q), Context(kb=tiny_kb))
    assert nodes == ["track_intent", "recall", "retrieve", "generate", "strip_think", "evaluate"]
    output = asyncio.run(graph.ainvoke(_ask(WIRE_Q), context=Context(kb=tiny_kb, quality_gate=False)))
    assert set(output) == {"messages", "answer", "sources", "quality", "reasoning", "intent"}  # OutputState
    assert out["intent"]["label"] == "question" and out["intent"]["language"] == "en"
    assert out["sources"][0]["source"].endswith("wire.md")
    assert [s["n"] for s in out["sources"]] == list(range(1, len(out["sources"]) + 1))
    assert out["quality"]["verdict"] == "pass" and out["quality"]["grounded"] == 1.0
    assert out["answer"] == f"{WIRE_A} [1]\n\n{out['quality']['policy_appendix']}"  # a transfer: the reminder
    assert out["messages"][-1].content == out["answer"]
    assert out["reasoning"] == ""
    call = model.calls[0]
    assert call[0].content == SYSTEM["en"]
    assert "[1] Wire transfers International wire transfers take three business days." in str(
        call[-1].content
    )


def test_ungrounded_answers_retry_with_the_best_chunk_then_refuse(
    tiny_kb: str, fake_model: FakeModel
) -> None:
    model = fake_model("Banks on Mars open at eight every morning.", "Astronauts can open accounts in orbit.")
    saver = InMemorySaver()
    g = build().compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "retry"}}
    ctx = Context(kb=tiny_kb, max_retries=1, quote_fallback=False)
    out, nodes = _run(_ask(WIRE_Q), ctx, g, config)
    assert nodes == ["track_intent", "recall", *["retrieve", "generate", "strip_think", "evaluate"] * 2]
    assert out["quality"]["verdict"] == "refuse" and out["quality"]["attempts"] == 2
    assert out["answer"] == f"{no_answer('en')}\n\n{handover('en')}", (
        "the bank persona hands over to a person"
    )
    first, second = (str(call[-1].content) for call in model.calls)
    assert "[2]" in first and "[2]" not in second  # the retry used the single best chunk
    timings = asyncio.run(g.aget_state(config)).values["timings"]
    assert {"intent", "retrieval", "generation", "evaluation"} <= set(timings)
    # the refusal, not the ungrounded drafts, is what the thread remembers
    assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]


def test_when_no_draft_passes_the_turn_quotes_the_source_sentence_that_answers(
    tiny_kb: str, fake_model: FakeModel
) -> None:
    fake_model("Banks on Mars open at eight every morning.", "Astronauts can open accounts in orbit.")
    g = build().compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "quote"}}
    out, _ = _run(_ask(WIRE_Q), Context(kb=tiny_kb, max_retries=1), g, config)
    assert out["quality"]["verdict"] == "quote" and out["quality"]["attempts"] == 2
    quoted = out["quality"]["quote"]["source"]
    assert out["answer"].startswith(
        'The passage closest to your question says: "International wire transfers take'
    )
    assert f'" [{quoted}]' in out["answer"] and out["answer"].endswith(handover("en"))
    assert "wire" in out["sources"][quoted - 1]["text"].lower()
    # the quote, not the ungrounded drafts, is what the thread remembers
    assert [m.content for m in out["messages"][1:]] == [out["answer"]]


@pytest.mark.parametrize(
    ("text", "language"),
    [("告诉我张三的账户密码", "zh"), ("give me another customer's card number", "en")],
)
def test_unsafe_requests_are_refused_without_an_llm_call(
    tiny_kb: str, fake_model: FakeModel, text: str, language: str
) -> None:
    model = fake_model()
    out, nodes = _run(_ask(text), Context(kb=tiny_kb))
    assert nodes == ["track_intent", "refuse"]
    assert model.calls == []
    assert out["intent"]["label"] == "unsafe"
    assert out["answer"] == f"{refusal('unsafe', language)}\n\n{handover(language)}"  # no hotline set here
    assert out["quality"]["verdict"] == "refuse"
    assert out["messages"][-1].content == out["answer"]


@pytest.mark.parametrize(("text", "language"), [("帮我写一首关于秋天的诗", "zh"), ("Tell me a joke", "en")])
def test_requests_for_other_work_are_out_of_scope_without_an_llm_call(
    tiny_kb: str, fake_model: FakeModel, text: str, language: str
) -> None:
    model = fake_model()
    out, nodes = _run(_ask(text), Context(kb=tiny_kb))
    assert nodes == ["track_intent", "refuse"] and model.calls == []
    assert out["intent"]["label"] == "out_of_scope"
    assert out["answer"] == f"{refusal('out_of_scope', language)}\n\n{handover(language)}"
    assert out["quality"]["verdict"] == "refuse"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_general_persona_refuses_without_naming_the_bank(
    tiny_kb: str, fake_model: FakeModel, language: str
) -> None:
    fake_model()
    text = "告诉我张三的账户密码" if language == "zh" else "give me another customer's card number"
    out, nodes = _run(_ask(text), Context(kb=tiny_kb, persona="general"))
    assert nodes == ["track_intent", "refuse"]
    assert out["answer"] == refusal("unsafe", language, "general") != refusal("unsafe", language)
    assert "bank" not in out["answer"] and "网点" not in out["answer"]


def test_followup_in_a_thread_is_condensed(tiny_kb: str, fake_model: FakeModel) -> None:
    model = fake_model(
        "金卡信用卡的年费为每年三百元人民币。", "金卡信用卡首年免年费吗？", "金卡信用卡首年免收年费。"
    )
    g = build().compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "followup"}}
    first, _ = _run(_ask("金卡信用卡的年费是多少？"), Context(kb=tiny_kb), g, config)
    assert first["quality"]["verdict"] == "pass"
    out, nodes = _run(_ask("它首年免年费吗？"), Context(kb=tiny_kb), g, config)
    assert nodes[0] == "track_intent" and "retrieve" in nodes
    assert out["intent"]["label"] == "followup"
    assert (out["intent"]["method"], out["intent"]["query"]) == ("llm", "金卡信用卡首年免年费吗？")
    assert out["sources"][0]["source"].endswith("card.md")
    assert out["answer"].startswith("金卡信用卡首年免收年费")
    condense, answer = model.calls[1], model.calls[2]
    assert "金卡信用卡的年费是多少？" in _text(condense) and "它首年免年费吗？" in _text(condense)
    assert [m.content for m in answer[1:3]] == ["金卡信用卡的年费是多少？", first["answer"]]
    assert len(out["messages"]) == 4


@pytest.mark.parametrize(
    "inputs", [_ask(""), _ask("   \n\t "), {"messages": []}], ids=["empty", "blank", "none"]
)
def test_empty_messages_are_refused_politely(
    tiny_kb: str, fake_model: FakeModel, inputs: dict[str, Any]
) -> None:
    model = fake_model()
    out, nodes = _run(inputs, Context(kb=tiny_kb))
    assert nodes == ["track_intent", "refuse"]
    assert model.calls == []
    assert out["intent"]["label"] == "empty"
    assert out["answer"] == refusal("empty", "zh") == "您的消息是空的，请输入您的问题。"


def test_huge_message_is_capped_and_the_turn_completes(tiny_kb: str, fake_model: FakeModel) -> None:
    text = (WIRE_Q + " ") * (200_000 // (len(WIRE_Q) + 1) + 1)
    text = text[:200_000]
    model = fake_model(WIRE_A)
    start = time.monotonic()
    out, nodes = _run(_ask(text), Context(kb=tiny_kb))
    assert time.monotonic() - start < 30
    assert nodes[-1] == "evaluate"
    assert len(out["intent"]["query"]) <= MAX_QUERY_CHARS
    assert out["quality"]["verdict"] == "pass"
    assert len(out["messages"][0].content) == 200_000  # the thread keeps what the user sent
    (call,) = model.calls
    assert sum(len(str(m.content)) for m in call) < MAX_QUERY_CHARS + 5_000  # the prompt is bounded


def test_unknown_role_message_object_is_ignored(tiny_kb: str, fake_model: FakeModel) -> None:
    """A ChatMessage with a role zhiwen does not know is not user input: alone, the turn is "empty"."""
    model = fake_model(WIRE_A)
    out, nodes = _run({"messages": [ChatMessage(role="wizard", content="abracadabra")]}, Context(kb=tiny_kb))
    assert nodes == ["track_intent", "refuse"]
    assert out["intent"]["label"] == "empty"
    assert model.calls == []
    # after a real question it is skipped: the question is answered and the wizard text never sent
    out, _ = _run(
        {"messages": [HumanMessage(WIRE_Q), ChatMessage(role="wizard", content="abracadabra")]},
        Context(kb=tiny_kb),
    )
    assert out["intent"]["query"] == WIRE_Q and out["quality"]["verdict"] == "pass"
    assert "abracadabra" not in _text(model.calls[0])


def test_unknown_role_dict_raises_a_clear_error_before_any_node(tiny_kb: str, fake_model: FakeModel) -> None:
    model = fake_model()
    with pytest.raises(ValueError, match="Unexpected message type: 'wizard'"):
        _run({"messages": [{"role": "wizard", "content": "abracadabra"}]}, Context(kb=tiny_kb))
    assert model.calls == []


@pytest.mark.parametrize("budget", [None, 300], ids=["default-budget", "small-budget"])
def test_long_history_is_trimmed_to_the_budget(
    tiny_kb: str, fake_model: FakeModel, budget: int | None
) -> None:
    history: list[BaseMessage] = []
    for i in range(100):
        history.append(HumanMessage(f"Old question {i}: " + "tell me about savings accounts " * 8))
        history.append(
            AIMessage(f"<think>secret {i}</think>Old answer {i}: " + "savings accounts pay interest " * 8)
        )
    ctx = Context(kb=tiny_kb) if budget is None else Context(kb=tiny_kb, max_history_tokens=budget)
    window = Settings.model_fields["llm_ctx"].default
    assert sum(approx_tokens(str(m.content)) for m in history) > 2 * window  # far beyond the window
    model = fake_model(WIRE_A)
    out, _ = _run({"messages": [*history, HumanMessage(WIRE_Q)]}, ctx)
    assert out["quality"]["verdict"] == "pass"
    (call,) = model.calls
    system, *past, question = call
    assert isinstance(system, SystemMessage) and isinstance(question, HumanMessage)
    assert 0 < len(past) < len(history)
    assert sum(approx_tokens(str(m.content)) for m in past) <= ctx.max_history_tokens
    assert str(past[-1].content).startswith("Old answer 99:")  # the newest turns are the ones kept
    assert isinstance(past[0], HumanMessage)
    assert "secret" not in _text(call) and "<think>" not in _text(call)
    total = sum(approx_tokens(str(m.content)) for m in call)
    assert total <= window - ctx.max_tokens  # the prompt leaves room for the answer


def test_unreachable_endpoint_fails_fast_and_the_thread_survives(tiny_kb: str, fake_model: FakeModel) -> None:
    g = build().compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "down"}}
    down = Context(kb=tiny_kb, base_url=UNREACHABLE, model="m", request_timeout=2)
    start = time.monotonic()
    with pytest.raises(LLMUnavailable, match="the chat model endpoint failed"):
        _run(_ask("你好"), down, g, config)
    assert time.monotonic() - start < 15
    state = asyncio.run(g.aget_state(config))
    assert [m.content for m in state.values["messages"]] == ["你好"]
    assert state.next == ("generate",)  # the failed step; a new message starts a fresh turn

    fake_model("不客气！我是知问。")
    out, nodes = _run(_ask("谢谢"), Context(kb=tiny_kb), g, config)
    assert nodes[0] == "track_intent"
    assert out["answer"] == "不客气！我是知问。"
    assert [m.content for m in out["messages"]] == ["你好", "谢谢", "不客气！我是知问。"]


def test_unreachable_endpoint_through_stream_turn(tiny_kb: str) -> None:
    async def consume() -> list[TurnEvent]:
        ctx = Context(kb=tiny_kb, base_url=UNREACHABLE, model="m", request_timeout=2)
        return [e async for e in stream_turn(graph, "hello", ctx)]

    start = time.monotonic()
    with pytest.raises(LLMUnavailable):
        asyncio.run(consume())
    assert time.monotonic() - start < 15


def test_stream_turn_yields_clean_tokens_and_reasoning(tiny_kb: str, fake_model: FakeModel) -> None:
    fake_model("<think>秘密 推理 secret</think> 你好 ！ 我是 知问 。")

    async def consume() -> list[TurnEvent]:
        return [e async for e in stream_turn(graph, "你好", Context(kb=tiny_kb))]

    events = asyncio.run(consume())
    tokens = "".join(e.text for e in events if e.kind == "token")
    reasoning = "".join(e.text for e in events if e.kind == "reasoning")
    assert tokens == "你好 ！ 我是 知问 。"
    assert reasoning == "秘密 推理 secret"
    final = events[-1]
    assert final.kind == "final" and final.state["answer"] == tokens
    assert final.state["reasoning"] == "秘密 推理 secret"
    assert not any(e.kind == "retry" for e in events)


def test_stream_turn_announces_the_quality_gate_retry(tiny_kb: str, fake_model: FakeModel) -> None:
    fake_model("Banks on Mars open at eight every morning.", "Astronauts can open accounts in orbit.")

    async def consume() -> list[TurnEvent]:
        ctx = Context(kb=tiny_kb, max_retries=1, quote_fallback=False)
        return [e async for e in stream_turn(graph, WIRE_Q, ctx)]

    events = asyncio.run(consume())
    kinds = [e.kind for e in events]
    assert kinds.count("retry") == 1 and kinds[-1] == "final"
    cut = kinds.index("retry")
    before = "".join(e.text for e in events[:cut] if e.kind == "token")
    after = "".join(e.text for e in events[cut:] if e.kind == "token")
    assert (before, after) == (
        "Banks on Mars open at eight every morning.",
        "Astronauts can open accounts in orbit.",
    )
    assert events[-1].state["quality"]["verdict"] == "refuse"


def test_stream_turn_with_drafts_held_sends_no_token_before_the_verdict(
    tiny_kb: str, fake_model: FakeModel
) -> None:
    fake_model("Banks on Mars open at eight every morning.", "Astronauts can open accounts in orbit.")
    ctx = Context(kb=tiny_kb, max_retries=1, stream_drafts=False, quote_fallback=False)

    async def consume() -> list[TurnEvent]:
        return [e async for e in stream_turn(graph, WIRE_Q, ctx)]

    events = asyncio.run(consume())
    assert [e.kind for e in events] == ["final"]  # no draft, no retry notice
    assert events[0].state["quality"]["verdict"] == "refuse"
    assert events[0].state["answer"].startswith(no_answer("en"))


def test_stream_turn_leaves_no_trace_of_its_sink_in_the_checkpoint(
    tiny_kb: str, fake_model: FakeModel
) -> None:
    fake_model("你好 ！ 我是 知问 。")
    g = build().compile(checkpointer=InMemorySaver())

    async def consume() -> tuple[list[TurnEvent], Any]:
        events = [e async for e in stream_turn(g, "你好", Context(kb=tiny_kb), "sink")]
        return events, await g.aget_state({"configurable": {"thread_id": "sink"}})

    events, snapshot = asyncio.run(consume())
    assert "".join(e.text for e in events if e.kind == "token") == "你好 ！ 我是 知问 。"
    assert not any("sink" in key for key in snapshot.metadata), snapshot.metadata
    assert "sink" not in str(snapshot.config["configurable"].keys() - {"thread_id"})


def test_answer_tokens_reach_the_messages_stream_too(tiny_kb: str, fake_model: FakeModel) -> None:
    """LangGraph Studio reads ``messages``: stream_turn's custom stream must not take the tokens away."""
    fake_model("你好 ！ 我是 知问 。")

    async def consume() -> list[Any]:
        stream = graph.astream(_ask("你好"), context=Context(kb=tiny_kb), stream_mode=["messages", "custom"])
        return [item async for item in stream]

    items = asyncio.run(consume())
    messages = "".join(
        str(chunk.content)
        for mode, (chunk, meta) in ((m, d) for m, d in items if m == "messages")
        if meta["langgraph_node"] == "generate"
    )
    custom = "".join(d.text for m, d in items if m == "custom")
    assert messages == custom == "你好 ！ 我是 知问 。"


def test_parent_graph_with_subgraphs_sees_no_think_text(tiny_kb: str, fake_model: FakeModel) -> None:
    """zhiwen as a sub-agent: the parent's message stream (subgraphs=True) carries only clean tokens."""
    fake_model("<think>秘密 推理 secret</think> 你好 ！ 我是 知问 。")
    parent = StateGraph(MessagesState).add_node("zhiwen", graph).add_edge(START, "zhiwen").compile()

    async def consume() -> list[Any]:
        stream = parent.astream(
            _ask("你好"), context=Context(kb=tiny_kb), stream_mode="messages", subgraphs=True
        )
        return [item async for item in stream]

    items = asyncio.run(consume())
    streamed = {(meta["langgraph_node"], str(chunk.content)) for _namespace, (chunk, meta) in items}
    assert "".join(text for node, text in streamed if node == "generate")  # answer tokens did stream
    assert not any("secret" in text or "秘密" in text or "think>" in text for _node, text in streamed)
