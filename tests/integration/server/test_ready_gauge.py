"""``zhiwen_ready``: what /ready answers, as a gauge the readiness-lost alert reads at every scrape; and
/health's ``model``, which follows the same probe."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zhiwen import __version__
from zhiwen.server.app import create_app
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


def _ready_gauge(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    values = [
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "zhiwen_ready"
    ]
    assert len(values) == 1, values
    return values[0]


def _point_the_model_at_a_closed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(get_settings(), "llm_base_url", f"http://127.0.0.1:{port}/v1")


def test_the_gauge_follows_the_model_endpoint_without_anyone_probing_ready(
    env: Env, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        assert _ready_gauge(c) == 1
        _point_the_model_at_a_closed_port(monkeypatch)
        assert _ready_gauge(c) == 0, "a scrape alone sees the model endpoint gone"
        assert c.get("/ready").status_code == 503
        assert c.get("/health").json()["model"] == "starting", "never reached, as when a start is under way"
        monkeypatch.undo()
        assert c.get("/ready").status_code == 200
        assert _ready_gauge(c) == 1
        assert c.get("/health").json()["model"] == "ready"


def test_health_does_not_call_a_model_ready_that_has_gone_away(
    env: Env, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "ready" (start-up succeeded) while /ready answered 503, model endpoint unreachable."""
    with (
        kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=True)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        assert c.get("/health").json()["model"] == "ready"
        _point_the_model_at_a_closed_port(monkeypatch)
        assert c.get("/ready").status_code == 503
        assert c.get("/health").json() == {"status": "ok", "version": __version__, "model": "unreachable"}
