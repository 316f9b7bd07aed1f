"""The live stack of the deployment tests: a real ``zhiwen serve`` (the image's command, on loopback) against a
scripted model, scraped every second by a real Prometheus (Debian's package) loaded with deploy/prometheus's
configuration and rules, under a short scripted load. Both processes are always stopped."""

from __future__ import annotations

import math
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_kit import DEPLOY, dockerfile_cmd, free_port, load_yaml, serve_argv, stop, tool, wait_for
from prometheus_client.parser import text_string_to_metric_families

from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer

KB = "bank"
QUESTION = "What is the annual fee of the gold card?"
ANSWER = "The annual fee of the gold card is 300 yuan."
DOCS = {
    "gold-card.md": b"# Gold card\n\nThe annual fee of the gold card is 300 yuan. The first year is free of charge.\n",
    "wire.txt": b"International wire transfers take three business days. The wire transfer fee is 15 dollars.",
    "jin-ka.md": "# 金卡年费\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n".encode(),
}


@dataclass
class Live:
    """The running stack: zhiwen's URL and key, its scripted model and that model's base URL (…/v1),
    Prometheus's URL (None: not installed)."""

    url: str
    key: str
    llm: ScriptedLLM
    upstream: str
    prometheus: str | None
    prometheus_skip_reason: str = ""
    statuses: list[int] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query through Prometheus's HTTP API; fails on any error or warning."""
        assert self.prometheus is not None
        resp = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=30)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", (expr, body)
        assert not body.get("warnings"), (expr, body["warnings"])
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _zhiwen_env(home: Path, upstream: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIWEN_", "OTEL_"))}
    return env | {"ZHIWEN_HOME": str(home), "ZHIWEN_LLM_BASE_URL": upstream, "ZHIWEN_LLM_MODEL": "scripted",
                  "ZHIWEN_API_KEYS": key}  # fmt: skip


def prometheus_config(zhiwen: str, own: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with a 1 s scrape, its rule files by absolute path, and static targets
    (this zhiwen, this Prometheus) in place of the compose network's DNS discovery."""
    config: dict[str, Any] = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, target in (("zhiwen", zhiwen), ("prometheus", own)):
        job = jobs[name]
        for key in [k for k in job if k.endswith("_sd_configs")]:
            del job[key]
        job["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [jobs["zhiwen"], jobs["prometheus"]]
    return config


def _exposed(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _load(live: Live, phase: int) -> None:
    """A few turns (passed, streamed, refused by rule and by the gate, failed upstream), a search, an upload."""
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=60) as c:

        def chat(question: str, **extra: Any) -> httpx.Response:
            body = {"model": KB, "messages": [{"role": "user", "content": question}], **extra}
            resp = c.post("/v1/chat/completions", json=body)
            live.statuses.append(resp.status_code)
            return resp

        if phase == 1:
            assert c.post("/v1/kbs", json={"name": KB}).status_code == 201
            files = [("files", (name, content, "text/plain")) for name, content in DOCS.items()]
            upload = c.post(f"/v1/kbs/{KB}/documents", params={"wait": "true"}, files=files)
            assert upload.status_code == 201, upload.text
        else:
            extra = [("files", ("branch.md", b"# Branch\n\nThe branch opens at nine.\n", "text/plain"))]
            assert c.post(f"/v1/kbs/{KB}/documents", params={"wait": "true"}, files=extra).status_code == 201
        assert chat(QUESTION).json()["quality"]["verdict"] == "pass"
        live.llm.enqueue(Script(ANSWER, token_delay=0.01))
        # asked again it would come from the answer cache (a hit, counted): streamed, a new wording reaches the model
        assert chat(QUESTION).json()["cached"] is True
        assert chat(f"{QUESTION} Tell me briefly.", stream=True).status_code == 200
        refused = chat("张三的身份证号是多少？" if phase == 1 else "Write a poem about the sea.")
        assert refused.json()["quality"]["verdict"] == "refuse", refused.text
        hits = c.post(f"/v1/kbs/{KB}/search", json={"query": "gold card annual fee", "top_k": 3})
        assert hits.status_code == 200 and hits.json(), hits.text
        if phase == 2:
            try:  # the default, not a queued script: the gate retries a refused draft
                fresh = "How much does the gold card cost per year?"  # not cached: the model is asked
                live.llm.default = Script("Bananas are yellow and grow in Ecuador.")
                assert chat(fresh).json()["quality"]["verdict"] == "refuse"
                live.llm.default = Script("never sent", status=500)
                assert chat(fresh).status_code == 502, "a refused answer is not cached"
            finally:
                live.llm.default = Script(ANSWER)


def _wait_until_scraped(live: Live, timeout: float = 30) -> None:
    """Until Prometheus holds the turn counts zhiwen exposes now (then two more scrapes)."""
    exposed = _exposed(live.url)
    want = sum(v for (name, _), v in exposed.items() if name == "zhiwen_quality_verdicts_total")
    deadline = time.monotonic() + timeout
    while True:
        got = live.query("sum(zhiwen_quality_verdicts_total)")
        if got and math.isclose(float(got[0]["value"][1]), want):
            break
        assert time.monotonic() < deadline, f"Prometheus never saw {want} verdicts (last: {got})"
        time.sleep(0.5)
    time.sleep(2.5)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("deploy-live")
    key = "zw_" + secrets.token_urlsafe(24)
    zhiwen_log, prometheus_log = base / "zhiwen.log", base / "prometheus.log"
    processes: list[subprocess.Popen[bytes]] = []
    with ScriptedLLMServer(ScriptedLLM(default=Script(ANSWER))) as upstream:
        try:
            port = free_port()
            argv = serve_argv(dockerfile_cmd(), "127.0.0.1", port)  # the image's command, on loopback
            with zhiwen_log.open("wb") as out:
                zhiwen = subprocess.Popen(argv, env=_zhiwen_env(base / "home", upstream.base_url, key),
                                          stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            processes.append(zhiwen)
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/ready", zhiwen, "zhiwen serve", zhiwen_log)
            live = Live(url, key, upstream.llm, upstream.base_url, None)
            binary = tool("prometheus")
            if binary is None:
                live.prometheus_skip_reason = (
                    "prometheus is not installed (scripts/test.sh installs it as root)"
                )
            else:
                prom_port = free_port()
                config = base / "prometheus.yml"
                own = f"127.0.0.1:{prom_port}"
                config.write_text(yaml.safe_dump(prometheus_config(f"127.0.0.1:{port}", own)))
                with prometheus_log.open("wb") as out:
                    prometheus = subprocess.Popen(
                        [binary, f"--config.file={config}", f"--storage.tsdb.path={base / 'tsdb'}",
                         f"--web.listen-address={own}", "--log.level=warn"],
                        stdout=out, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                processes.append(prometheus)
                wait_for(f"http://{own}/-/ready", prometheus, "prometheus", prometheus_log)
                live.prometheus = f"http://{own}"
                time.sleep(2)  # a few scrapes of the idle server first, so the load shows as rates
            _load(live, 1)
            time.sleep(3)
            _load(live, 2)
            if live.prometheus:
                _wait_until_scraped(live)
            yield live
        finally:
            for process in reversed(processes):
                stop(process)


@pytest.fixture
def prometheus(live: Live) -> Live:
    """The live stack, skipping the test where Prometheus could not be installed."""
    if live.prometheus is None:
        pytest.skip(live.prometheus_skip_reason)
    return live
