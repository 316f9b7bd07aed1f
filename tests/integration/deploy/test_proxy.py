"""deploy/proxy/nginx.conf run by a real nginx (Debian's package) in front of a live zhiwen serve: it passes
the configuration test, streams a chat answer chunk by chunk, and keeps the SSE settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from deploy_kit import DEPLOY, free_port, stop, wait_for

from zhiwen.testing.scripted_llm import Script

if TYPE_CHECKING:
    from conftest import Live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONF = DEPLOY / "proxy" / "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; scripts/test.sh installs it as root)")
    return found


def site(upstream: str, port: int) -> str:
    """The compose site with the replicas' names pointing at ``upstream`` and the port on loopback."""
    text = CONF.read_text()
    assert {"zhiwen-1:8000", "zhiwen-2:8000", "listen 8080;"} <= {
        s for s in re.findall(r"zhiwen-\d:8000|listen 8080;", text)
    }
    return re.sub(r"zhiwen-\d:8000", upstream, text).replace("listen 8080;", f"listen 127.0.0.1:{port};")


@pytest.fixture(scope="module")
def proxy(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = nginx_binary()
    base = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (base / "zhiwen.conf").write_text(site(live.url.removeprefix("http://"), port))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may write the temp folders in base
    temps = " ".join(
        f"{kind}_temp_path {base / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = base / "nginx.conf"
    main.write_text(f"{user}daemon off;\npid {base / 'nginx.pid'};\nerror_log {base / 'error.log'} warn;\n"
                    f"events {{}}\nhttp {{\naccess_log off;\n{temps}\ninclude {base / 'zhiwen.conf'};\n}}\n")  # fmt: skip
    checked = subprocess.run([binary, "-t", "-p", str(base), "-c", str(main)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    log = base / "stdout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-p", str(base), "-c", str(main)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/proxy-health", process, "nginx", base / "error.log", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_a_streamed_answer_arrives_through_nginx_as_it_is_generated(live: Live, proxy: str) -> None:
    words = [f"w{i} " for i in range(12)]
    live.llm.enqueue(Script("".join(words), chunks=words, token_delay=0.25))
    question = "What is the yearly fee of the gold card, asked through the proxy?"  # not in the answer cache
    body = {"model": "bank", "messages": [{"role": "user", "content": question}],
            "stream": True}  # fmt: skip
    arrivals: list[float] = []
    started = time.monotonic()
    with (
        httpx.Client(timeout=60, headers=live.headers) as client,
        client.stream("POST", f"{proxy}/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                arrivals.append(time.monotonic() - started)
            if line == "data: [DONE]":
                done = time.monotonic() - started
    assert len(arrivals) >= 6, arrivals
    # 12 chunks 0.25 s apart: unbuffered, the first arrives seconds before the end.
    assert arrivals[0] < done - 1.5, (arrivals, done)


def test_uploads_and_administration_go_to_one_replica_and_sse_is_not_buffered() -> None:
    text = CONF.read_text()
    directives = dict(re.findall(r"^\s*(proxy_buffering|proxy_cache|proxy_read_timeout|proxy_http_version)\s+([^;]+);",
                                 text, re.M))  # fmt: skip
    assert directives["proxy_buffering"] == "off" and directives["proxy_cache"] == "off"
    assert directives["proxy_http_version"] == "1.1"
    assert int(directives["proxy_read_timeout"].rstrip("s")) >= 600
    writer = re.search(r"upstream zhiwen_writer \{([^}]*)\}", text)
    assert writer and re.findall(r"server ([^\s;]+)", writer.group(1)) == ["zhiwen-1:8000"]
    assert re.search(r"location /v1/kbs \{[^}]*proxy_pass http://zhiwen_writer;", text)
