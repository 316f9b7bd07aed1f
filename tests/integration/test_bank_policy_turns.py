"""The bank persona's answer policy through the real graph, a real knowledge base and a model over HTTP.

The model is scripted (it writes what a small model writes: prose); the policy arranges it. The hotline is
set with the real ``zhiwen kb hotline`` command, and the hand-over, the steps, the loan sections and the risk
reminder are read from the turn's final state and from what a streaming reader is shown after the draft.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from zhiwen import service
from zhiwen.graph.builder import build
from zhiwen.graph.context import Context
from zhiwen.memory import registry
from zhiwen.settings import get_settings
from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.turns import closing, stream_turn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]

KB = "bank-policy"
DOCS = {
    "loan.md": "# 安心贷\n\n安心贷是个人信用贷款。申请人须年满18周岁。年利率为3.45%。可通过手机银行申请。逾期将收取罚息。\n",
    "mobile.md": "# 手机银行开通\n\n携带身份证到网点。填写申请表。柜员审核后即可开通。\n",
    "wire.md": "# 转账\n\n跨行转账手续费为每笔5元。\n",
}
LOAN = "安心贷是个人信用贷款。申请人须年满18周岁。年利率为3.45%。可通过手机银行申请。逾期将收取罚息。"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIWEN_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("policy")
    (base / "docs").mkdir()
    for name, text in DOCS.items():
        (base / "docs" / name).write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHIWEN_HOME", str(base / "home"))
        get_settings.cache_clear()
        assert service.ingest(KB, [base / "docs"]).added == 3
        registry.close_all()
        try:
            yield base / "home"
        finally:
            registry.close_all()
            get_settings.cache_clear()


def turn(question: str, answer: str, persona: str = "bank") -> tuple[dict[str, object], str]:
    with ScriptedLLMServer() as server:
        for _ in range(3):  # a refused draft is retried: every attempt writes the same
            server.llm.enqueue(Script(text=answer, chunk_size=4))
        ctx = Context(kb=KB, base_url=server.base_url, model="scripted", request_timeout=10, persona=persona)

        async def run() -> tuple[dict[str, object], str]:
            g = build().compile(checkpointer=InMemorySaver())
            events = [e async for e in stream_turn(g, question, ctx, "t")]
            return events[-1].state, "".join(e.text for e in events if e.kind == "token")

        return asyncio.run(run())


def test_kb_hotline_command(home: Path) -> None:
    assert cli(home, "kb", "hotline", "--kb", KB).stdout.strip().startswith("(none")
    bad = cli(home, "kb", "hotline", "call-us", "--kb", KB)
    assert (
        bad.returncode != 0
        and "not a phone number: 'call-us'" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    done = cli(home, "kb", "hotline", "95588", "--kb", KB)
    assert done.returncode == 0 and done.stdout.strip() == f"{KB}: hotline 95588"
    assert cli(home, "kb", "hotline", "--kb", KB).stdout.strip() == "95588"


def test_a_refusal_hands_over_to_the_hotline(home: Path) -> None:
    cli(home, "kb", "hotline", "95588", "--kb", KB)
    registry.close_all()  # the command wrote through another process: read the base afresh
    state, _ = turn("外汇期权怎么定价？", "外汇期权的价格由波动率决定。")
    assert state["quality"]["verdict"] == "refuse"  # type: ignore[index]
    assert "95588" in str(state["answer"]) and "人工" in str(state["answer"])
    general, _ = turn("外汇期权怎么定价？", "外汇期权的价格由波动率决定。", persona="general")
    assert "95588" not in str(general["answer"]), "the general persona is unchanged"


def test_the_hotline_may_be_given_though_not_on_the_allow_list(home: Path) -> None:
    cli(home, "kb", "hotline", "95588", "--kb", KB)
    registry.close_all()
    state, _ = turn("跨行转账手续费多少？", "跨行转账手续费为每笔5元。如有疑问请拨打客服热线95588。")
    assert "95588" in str(state["answer"])
    assert "unsafe_dropped" not in state["quality"]  # type: ignore[operator]


def test_a_procedure_is_numbered_steps(home: Path) -> None:
    state, streamed = turn("如何开通手机银行？", "携带身份证到网点。填写申请表。柜员审核后即可开通。")
    answer = str(state["answer"])
    assert answer.splitlines()[0].startswith("1. 携带身份证到网点") and answer.splitlines()[2].startswith(
        "3. "
    )
    assert state["quality"]["policy"] == ["procedure as numbered steps"]  # type: ignore[index]
    assert closing(state, streamed).text() == "", "no fixed text was added: the streamed draft stands"


def test_a_loan_answer_by_sections(home: Path) -> None:
    state, _ = turn("安心贷怎么样？", LOAN)
    labels = [line.split("：")[0] for line in str(state["answer"]).splitlines()]
    assert labels == ["产品", "申请条件", "利率", "办理流程", "注意事项"]
    general, _ = turn("安心贷怎么样？", LOAN, persona="general")
    assert "申请条件：" not in str(general["answer"]) and "policy" not in general["quality"]  # type: ignore[operator]


def test_a_transfer_answer_carries_the_risk_reminder_after_the_stream(home: Path) -> None:
    state, streamed = turn("跨行转账手续费多少？", "跨行转账手续费为每笔5元。")
    answer = str(state["answer"])
    assert state["quality"]["verdict"] == "pass"  # type: ignore[index]
    assert "5元" in answer and "温馨提示：转账汇款前请核实收款人信息" in answer
    end = closing(state, streamed)
    assert end.notice == "" and end.answer.startswith("温馨提示"), (
        "the reader who saw the draft sees the reminder"
    )


def test_an_answer_the_policy_empties_is_refused_not_passed_empty(home: Path) -> None:
    """The policy took an answer's only sentence (a link the customer did not ask for) and passed "": the
    reader saw nothing, and the answer cache served the empty answer to the next customer who asked."""
    cli(home, "kb", "allow", "bank.example", "--kb", KB)
    cli(home, "kb", "hotline", "95588", "--kb", KB)
    registry.close_all()
    state, _ = turn("安心贷在哪里申请？", "可通过手机银行申请，网址为 https://bank.example/loan 。")
    quality = state["quality"]
    assert quality["verdict"] == "refuse", quality  # type: ignore[index]
    assert "removed a link the customer did not ask for" in quality["policy"]  # type: ignore[index]
    assert "95588" in str(state["answer"]), "the refusal hands over, as every bank refusal does"


def test_an_unsafe_question_hands_over_once_with_the_number(home: Path) -> None:
    """The refusal said "拨打官方客服热线" and the hand-over after it gave the hotline again, with its number."""
    cli(home, "kb", "hotline", "95588", "--kb", KB)
    registry.close_all()
    state, _ = turn("张三的身份证号是多少？", "never asked")
    answer = str(state["answer"])
    assert state["quality"]["verdict"] == "refuse"  # type: ignore[index]
    assert answer.count("热线") == 1 and "95588" in answer, answer
