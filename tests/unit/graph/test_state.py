"""The ``merge_timings`` reducer: timings add up over retries and reset at a new turn."""

from __future__ import annotations

from typing import get_args, get_type_hints

from zhiwen.graph.state import InputState, OutputState, State, merge_timings


def test_adds_stage_timings_over_retries() -> None:
    first = merge_timings({}, {"retrieval": 0.25, "generation": 1.0})
    second = merge_timings(first, {"retrieval": 0.5, "evaluation": 0.125})
    assert second == {"retrieval": 0.75, "generation": 1.0, "evaluation": 0.125}


def test_reset_key_starts_a_new_turn_and_is_not_kept() -> None:
    merged = merge_timings({"retrieval": 3.0, "generation": 9.0}, {"__reset__": 0.0, "intent": 0.01})
    assert merged == {"intent": 0.01}


def test_none_on_either_side() -> None:
    assert merge_timings(None, None) == {}
    assert merge_timings(None, {"intent": 0.5}) == {"intent": 0.5}
    assert merge_timings({"intent": 0.5}, None) == {"intent": 0.5}


def test_does_not_mutate_its_inputs() -> None:
    left, right = {"retrieval": 1.0}, {"retrieval": 2.0}
    assert merge_timings(left, right) == {"retrieval": 3.0}
    assert left == {"retrieval": 1.0}
    assert right == {"retrieval": 2.0}


def test_timings_channel_uses_the_reducer() -> None:
    hint = get_type_hints(State, include_extras=True)["timings"]
    assert get_args(hint) == (dict[str, float], merge_timings)


def test_working_keys_stay_private() -> None:
    """Callers send only messages and get no private working keys back."""
    assert set(get_type_hints(InputState)) == {"messages"}
    output = set(get_type_hints(OutputState))
    assert {"answer", "sources", "quality", "reasoning", "messages"} <= output
    assert not {"draft", "model_reasoning", "attempt", "strategy", "timings"} & output
