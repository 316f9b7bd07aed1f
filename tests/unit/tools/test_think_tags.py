"""Tests for zhiwen.tools.think_tags: whole-text splitting and the streaming filter agree."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhiwen.tools.think_tags import ThinkSplit, ThinkStreamFilter, split_reasoning_content, strip_think

OPEN, CLOSE = "<think>", "</think>"
BIG = 10**9

TOKENS = [
    OPEN,
    CLOSE,
    "```",
    "`",
    "<",
    ">",
    "/",
    "<thi",
    "</thi",
    "nk>",
    "think",
    " ",
    "\n",
    "\t",
    "\u3000",
    "中文",
    "答案",
    "。",
    "a",
    "b",
    "x = 1",
    "```html\n<think>x</think>\n```",
    "`<think>`",
]
PLAIN = ["a", "b", " ", "\n", "中文", "答案", "。", "`", "```", "x = 1", "think", ">", "/", "nk>"]
ws = st.text(alphabet=" \n\t\u3000", max_size=3)
plain = st.lists(
    st.sampled_from(PLAIN) | st.text(st.characters(exclude_characters="<"), max_size=4), max_size=10
).map("".join)
random_text = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=25).map("".join)
block_body = (
    st.lists(st.sampled_from([t for t in TOKENS if t != CLOSE]), max_size=8)
    .map("".join)
    .filter(lambda s: CLOSE not in s)
)


@st.composite
def leading_think_texts(draw: st.DrawFn, answer: st.SearchStrategy[str] = random_text) -> str:
    """Leading whitespace, 1-3 think blocks (the last possibly unclosed), whitespace, an answer."""
    bodies = draw(st.lists(block_body, min_size=1, max_size=3))
    text = draw(ws) + "".join(f"{OPEN}{b}{CLOSE}{draw(ws)}" for b in bodies)
    if draw(st.booleans()):
        return text + OPEN + draw(block_body)  # unclosed
    return text + draw(answer)


@st.composite
def r1_texts(draw: st.DrawFn) -> str:
    return draw(ws) + draw(block_body) + CLOSE + draw(ws) + draw(random_text)


any_text = random_text | leading_think_texts() | r1_texts() | plain


def chunk_at(text: str, cuts: Sequence[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def run(flt: ThinkStreamFilter, chunks: Sequence[str]) -> tuple[ThinkSplit, list[ThinkSplit]]:
    outs = [flt.feed(c) for c in chunks] + [flt.finish()]
    return ThinkSplit("".join(o.answer for o in outs), "".join(o.reasoning for o in outs)), outs


def draw_chunks(data: st.DataObject, text: str) -> list[str]:
    # duplicate cut positions give empty chunks; cuts land anywhere, including inside tags
    return chunk_at(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12)))


# ---- property tests ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=any_text, expect=st.booleans(), data=st.data())
def test_stream_matches_strip_think(text: str, expect: bool, data: st.DataObject) -> None:
    chunks = draw_chunks(data, text)
    total, outs = run(ThinkStreamFilter(expect_open_in_prompt=expect, max_undecided=BIG), chunks)
    assert total == strip_think(text, expect_open_in_prompt=expect)
    # latency: once answer text has been emitted, every later chunk passes through unchanged
    started = False
    for chunk, out in zip(chunks, outs, strict=False):
        if started:
            assert out == ThinkSplit(chunk, "")
        started = started or bool(out.answer)


@settings(max_examples=300, deadline=None)
@given(text=any_text, limit=st.integers(0, 40) | st.just(BIG), data=st.data())
def test_stream_is_independent_of_chunking(text: str, limit: int, data: st.DataObject) -> None:
    whole, _ = run(ThinkStreamFilter(max_undecided=limit), [text])
    total, _ = run(ThinkStreamFilter(max_undecided=limit), draw_chunks(data, text))
    assert total == whole
    if CLOSE not in text:
        assert total == strip_think(text)


@settings(max_examples=300, deadline=None)
@given(text=any_text.filter(lambda t: CLOSE not in t), data=st.data())
def test_default_filter_agrees_without_close_tag_and_streams(text: str, data: st.DataObject) -> None:
    total, _ = run(ThinkStreamFilter(), draw_chunks(data, text))
    assert total == strip_think(text)
    flt, emitted = ThinkStreamFilter(), ""
    for i, ch in enumerate(text, 1):
        emitted += flt.feed(ch).answer
        body = text[:i].lstrip()
        if not body.startswith(OPEN) and not OPEN.startswith(body):
            assert emitted == text[:i]  # decided as answer: nothing is buffered


@settings(max_examples=300, deadline=None)
@given(
    text=leading_think_texts(answer=plain),
    expect=st.booleans(),
    limit=st.sampled_from([0, 5, BIG]),
    data=st.data(),
)
def test_no_tags_leak_into_answer(text: str, expect: bool, limit: int, data: st.DataObject) -> None:
    total, outs = run(ThinkStreamFilter(expect, limit), draw_chunks(data, text))
    assert total == strip_think(text, expect)
    for piece in [*(o.answer for o in outs), total.answer]:
        assert OPEN not in piece and CLOSE not in piece


@settings(max_examples=300, deadline=None)
@given(lead=ws, body=block_body, tail=random_text)
def test_reasoning_holds_back_at_most_a_partial_close_tag(lead: str, body: str, tail: str) -> None:
    text = f"{lead}{OPEN}{body}{CLOSE}{tail}"
    flt, reasoning, start = ThinkStreamFilter(), "", len(lead) + len(OPEN)
    for i, ch in enumerate(text[: start + len(body)], 1):
        reasoning += flt.feed(ch).reasoning
        seen = body[: max(0, i - start)]
        assert seen.startswith(reasoning) and len(seen) - len(reasoning) <= len(CLOSE) - 1


# ---- examples ------------------------------------------------------------------------------------

SAMPLE = "  <think>用户问 a<b 与 </thi 的关系。</think>\n\n答案：`a < b`。"
SAMPLE_SPLIT = ThinkSplit("答案：`a < b`。", "用户问 a<b 与 </thi 的关系。")


def test_sample_whole() -> None:
    assert strip_think(SAMPLE) == SAMPLE_SPLIT


@pytest.mark.parametrize("limit", [0, BIG])
def test_sample_split_at_every_position_and_pair(limit: int) -> None:
    n = len(SAMPLE)
    for i in range(n + 1):
        assert run(ThinkStreamFilter(max_undecided=limit), chunk_at(SAMPLE, [i]))[0] == SAMPLE_SPLIT
        for j in range(i, n + 1):
            assert run(ThinkStreamFilter(max_undecided=limit), chunk_at(SAMPLE, [i, j]))[0] == SAMPLE_SPLIT
    assert run(ThinkStreamFilter(max_undecided=limit), list(SAMPLE))[0] == SAMPLE_SPLIT


def test_r1_bare_close() -> None:
    text = "The user wants X.\n</think>\n\nHere is X."
    expected = ThinkSplit("Here is X.", "The user wants X.\n")
    assert strip_think(text) == expected
    assert run(ThinkStreamFilter(max_undecided=BIG), list(text))[0] == expected
    assert run(ThinkStreamFilter(expect_open_in_prompt=True), list(text))[0] == expected
    # default policy does not wait for a bare </think>: the text is answer as it streams
    assert run(ThinkStreamFilter(), list(text))[0] == ThinkSplit(text, "")


def test_r1_window_boundary() -> None:
    text = "abc</think>x"  # the close tag ends at character 11
    assert run(ThinkStreamFilter(max_undecided=11), list(text))[0] == ThinkSplit("x", "abc")
    assert run(ThinkStreamFilter(max_undecided=10), list(text))[0] == ThinkSplit(text, "")
    assert run(ThinkStreamFilter(max_undecided=10), [text])[0] == ThinkSplit(text, "")


def test_r1_followed_by_more_blocks() -> None:
    assert strip_think("a</think> <think>b</think> c") == ThinkSplit("c", "a\nb")


@pytest.mark.parametrize("text", ["```\n</think>\n```", "x <think>y</think> z", "a`<think>`b</think>c"])
def test_fence_or_open_before_bare_close_means_no_reasoning(text: str) -> None:
    assert strip_think(text) == ThinkSplit(text, "")
    assert run(ThinkStreamFilter(max_undecided=BIG), list(text))[0] == ThinkSplit(text, "")


def test_unclosed_think_at_end() -> None:
    text = "<think>still thinking about </thi"
    assert strip_think(text) == ThinkSplit("", "still thinking about </thi")
    assert run(ThinkStreamFilter(), list(text))[0] == ThinkSplit("", "still thinking about </thi")
    assert strip_think("<think>a</think>\n<think>b") == ThinkSplit("", "a\nb")


def test_expect_open_in_prompt() -> None:
    assert strip_think("no close at all", expect_open_in_prompt=True) == ThinkSplit("", "no close at all")
    assert strip_think("<think>a</think>b", expect_open_in_prompt=True) == ThinkSplit("b", "a")
    flt = ThinkStreamFilter(expect_open_in_prompt=True)
    assert flt.feed("reasoning ").reasoning == "reasoning "
    assert flt.finish() == ThinkSplit("", "")


def test_no_think() -> None:
    text = "  Plain answer, 没有推理。\n"
    assert strip_think(text) == ThinkSplit(text, "")
    flt = ThinkStreamFilter()
    assert flt.feed("  ") == ThinkSplit("", "")  # could still become "<think>"
    assert flt.feed("Plain") == ThinkSplit("  Plain", "")
    assert flt.feed(" answer</think>") == ThinkSplit(" answer</think>", "")


@pytest.mark.parametrize("limit", [0, BIG])
def test_think_tag_inside_code_in_answer_is_kept(limit: int) -> None:
    text = "Use:\n```html\n<think>x</think>\n```\nand inline `<think>`."
    assert strip_think(text) == ThinkSplit(text, "")
    for i in range(len(text) + 1):
        assert run(ThinkStreamFilter(max_undecided=limit), chunk_at(text, [i]))[0] == ThinkSplit(text, "")
    with_reasoning = "<think>r</think>" + text
    assert strip_think(with_reasoning) == ThinkSplit(text, "r")
    assert run(ThinkStreamFilter(max_undecided=limit), list(with_reasoning))[0] == ThinkSplit(text, "r")


def test_chinese() -> None:
    text = "<think>用户问的是天气。\n查一下。</think>\n\n今天北京晴，气温 25°C。"
    expected = ThinkSplit("今天北京晴，气温 25°C。", "用户问的是天气。\n查一下。")
    assert strip_think(text) == expected
    assert run(ThinkStreamFilter(), list(text))[0] == expected


def test_case_sensitive_tags() -> None:
    text = "<THINK>x</THINK> y"
    assert strip_think(text) == ThinkSplit(text, "")
    assert run(ThinkStreamFilter(), [text])[0] == ThinkSplit(text, "")


def test_empty_input() -> None:
    assert strip_think("") == ThinkSplit("", "")
    assert strip_think("", expect_open_in_prompt=True) == ThinkSplit("", "")
    assert ThinkStreamFilter().finish() == ThinkSplit("", "")
    flt = ThinkStreamFilter()
    assert flt.feed("") == ThinkSplit("", "")
    assert flt.finish() == ThinkSplit("", "")
    assert strip_think("<think></think>") == ThinkSplit("", "")


def test_split_reasoning_content() -> None:
    assert split_reasoning_content({"reasoning_content": "r1", "reasoning": "r2"}) == "r1"
    assert split_reasoning_content({"reasoning": "r2", "content": "c"}) == "r2"
    assert split_reasoning_content({"additional_kwargs": {"reasoning_content": "r3"}}) == "r3"
    assert split_reasoning_content({"reasoning_content": None, "reasoning": ""}) == ""
    assert split_reasoning_content({"content": "hi", "additional_kwargs": None}) == ""
    assert split_reasoning_content({"reasoning_content": ["x"], "reasoning": "r4"}) == "r4"
    assert split_reasoning_content({}) == ""
