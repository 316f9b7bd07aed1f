"""The turn pump's non-blocking read and the SSE writer's merging of queued events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from zhiwen.server.pump import TurnPump
from zhiwen.server.routes.chat import _data, _merged
from zhiwen.turns import TurnEvent


async def _events(items: list[TurnEvent | Exception]) -> AsyncGenerator[TurnEvent, None]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def test_ready_returns_queued_events_and_leaves_the_end_for_next() -> None:
    async def run() -> tuple[list[str], list[str]]:
        pump = TurnPump(_events([TurnEvent("token", "a"), TurnEvent("token", "b")]))
        await asyncio.sleep(0.01)  # let the pump drain the generator
        first = [e.text for e in pump.ready()]
        again = [e.text for e in pump.ready()]
        with pytest.raises(StopAsyncIteration):
            await pump.next()
        return first, again

    assert asyncio.run(run()) == (["a", "b"], [])


def test_ready_keeps_a_turn_error_for_next() -> None:
    async def run() -> list[str]:
        pump = TurnPump(_events([TurnEvent("token", "a"), RuntimeError("model died")]))
        await asyncio.sleep(0.01)
        got = [e.text for e in pump.ready()]
        assert pump.ready() == []
        with pytest.raises(RuntimeError, match="model died"):
            await pump.next()
        return got

    assert asyncio.run(run()) == ["a"]


def test_merged_joins_consecutive_tokens_only() -> None:
    events = [
        TurnEvent("token", "金卡"),
        TurnEvent("token", "年费"),
        TurnEvent("retry"),
        TurnEvent("token", "300"),
        TurnEvent("reasoning", "x"),
        TurnEvent("reasoning", "y"),
        TurnEvent("final"),
    ]
    merged = [(e.kind, e.text, n) for e, n in _merged(events)]
    assert merged == [
        ("token", "金卡年费", 2),
        ("retry", "", 1),
        ("token", "300", 1),
        ("reasoning", "xy", 2),
        ("final", "", 1),
    ]


def test_data_is_one_line_even_with_newlines_in_the_text() -> None:
    frame = _data({"choices": [{"delta": {"content": "第一行\n第二行"}}]})
    assert frame.startswith("data: {") and frame.endswith("\n\n")
    assert frame.count("\n") == 2 and "第一行\\n第二行" in frame
