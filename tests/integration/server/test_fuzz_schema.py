"""Property-based fuzzing of every operation in the server's OpenAPI schema: no input gives a 5xx.

Schemathesis generates valid and invalid requests from ``/openapi.json`` of a live server (real uvicorn,
the scripted upstream behind the chat route) and checks ``not_a_server_error`` on each response.
(Schemathesis' own pytest loader, ``from_fixture``, fails under pytest 9, so operations are parametrised
here and each runs a Hypothesis test built from the operation's strategy.)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

MAX_EXAMPLES = int(os.environ.get("ZHIWEN_FUZZ_EXAMPLES", "30"))
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()
# Every operation, read from a throwaway app's schema (building an app starts nothing).
_PATHS = create_app(ServerSettings(allow_open=True), start_model=False).openapi()["paths"]
OPERATIONS = sorted(f"{method.upper()} {path}" for path, item in _PATHS.items() for method in item)


@pytest.fixture(scope="module")
def fuzz_url(env: Env, kit: type[Kit]) -> Iterator[str]:
    limits = kit.open_settings(
        max_body_bytes=20_000, max_upload_bytes=20_000, rate_per_minute=100_000, error_window_seconds=2.0
    )
    with kit.serve(create_app(limits, start_model=False)) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(fuzz_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")


def _aimed(kb: str) -> Callable[[schemathesis.Case], schemathesis.Case]:
    """Point a generated case at the existing knowledge base, so it gets past the 404 into the real work
    (retrieval, the graph and the scripted model for chats; search and ingest for the KB routes)."""

    def aim(case: schemathesis.Case) -> schemathesis.Case:
        if case.path_parameters and "name" in case.path_parameters and case.method != "DELETE":
            case.path_parameters["name"] = kb
        if case.path == "/v1/chat/completions" and isinstance(case.body, dict):
            case.body["model"] = kb
            messages = case.body.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
                messages[-1]["role"] = "user"  # random text, but a turn the graph will answer
                if not str(messages[-1].get("content") or "").strip():
                    messages[-1]["content"] = "gold card fee?"
        return case

    return aim


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors(api_schema: schemathesis.BaseSchema, fuzz_url: str, env: Env, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    negative = operation.as_strategy(GenerationMode.NEGATIVE)
    strategy = st.one_of(positive, negative, positive.map(_aimed(env.kb)), negative.map(_aimed(env.kb)))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=fuzz_url, checks=[not_a_server_error], timeout=60)
        CASES[label] += 1
        STATUSES[response.status_code] += 1

    fuzz()


def test_fuzzing_covered_every_operation(fuzz_url: str, env: Env) -> None:
    live = {
        f"{method.upper()} {path}"
        for path, item in httpx.get(f"{fuzz_url}/openapi.json").json()["paths"].items()
        for method in item
    }
    assert live == set(OPERATIONS)
    print(
        f"\nschemathesis: {sum(CASES.values())} cases over {len(CASES)} operations, "
        f"{len(env.llm.requests)} reached the model; statuses {dict(sorted(STATUSES.items()))}"
    )
    assert set(CASES) == live
    assert all(status < 500 for status in STATUSES)
    assert env.llm.requests, "no generated chat got as far as the model"
    assert STATUSES[429] == 0  # the limits were out of the way: every case reached its route
    # Operations with inputs got many cases; those without (probes) need only one.
    assert sum(n >= MAX_EXAMPLES // 2 for n in CASES.values()) >= len(live) - 4, CASES
