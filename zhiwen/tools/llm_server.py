"""The embedded model server: llama-cpp-python's OpenAI-compatible server as a managed child process.

zhiwen always talks to its chat model over HTTP, exactly as production talks to vLLM; when no endpoint
is configured, this module starts one on 127.0.0.1 (free port, health wait, log file) and makes sure the
child dies with its parent, even when the parent is killed (Linux parent-death signal).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from zhiwen.errors import LLMUnavailable
from zhiwen.settings import Settings
from zhiwen.tools.cpu_backends import FALLBACK_VARIANTS, VARIANT_ENV, backend_dir, cpu_variants, variant_dir
from zhiwen.tools.models import MODELS, resolve_model

__all__ = ["LLMEndpoint", "LocalLLMServer", "resolve_endpoint"]

_log = logging.getLogger(__name__)
SERVER_MODULE = "zhiwen.tools.llama_serve"  # llama_cpp.server, with CPU dispatch set up and probed


@dataclass(frozen=True)
class LLMEndpoint:
    """Where to send chat completions: base URL ending in /v1, model name, API key."""

    base_url: str
    model: str
    api_key: str = "EMPTY"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Looked up in the parent: loading a library between fork and exec, in a child of a threaded process
# (the server), can deadlock on a lock another thread held at the fork.
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# Linux sends the parent-death signal when the *thread* that forked the child ends, not the process. Servers
# are usually started from a worker of asyncio.to_thread (the chat model is made off the event loop), and that
# pool's threads end with their asyncio.run: a second asyncio.run in one process (a script, the prompt-budget
# benchmark) found its model server killed. So every server is forked from this one thread, alive until exit.
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhiwen-llm-spawner")


class LocalLLMServer:
    """One llama.cpp server process serving one embedded model."""

    def __init__(self, model_key: str, settings: Settings) -> None:
        self.model = MODELS.get(model_key)
        self.model_key = model_key
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path: Path | None = None
        self.exit_code: int | None = (
            None  # of a server that exited at start-up (negative: killed by a signal)
        )

    @property
    def endpoint(self) -> LLMEndpoint:
        alias = self.model.alias if self.model else self.model_key
        return LLMEndpoint(f"http://127.0.0.1:{self.port}/v1", alias)

    def start(self, timeout: float = 120.0) -> LLMEndpoint:
        """Start the server and wait until it answers ``GET /v1/models``.

        A run-time dispatch build whose chosen CPU variant dies of SIGILL (an instruction the CPU advertises
        but refuses; the server's start-up probe runs them) is started again on each of
        :data:`~zhiwen.tools.cpu_backends.FALLBACK_VARIANTS` in turn, with a warning.
        """
        if importlib.util.find_spec("llama_cpp") is None:
            raise LLMUnavailable(
                "the embedded model needs the local extra: pip install -e '.[local]' in the checkout "
                "(scripts/setup.sh installs it), or set ZHIWEN_LLM_BASE_URL to an OpenAI-compatible endpoint such "
                "as vLLM"
            )
        path = resolve_model(self.model_key, self.settings.home)
        assert self.model is not None
        chosen = os.environ.get(VARIANT_ENV) or None
        variants = cpu_variants(variant_dir(backend_dir()))
        if chosen and chosen not in variants:  # one line now, not a server that dies at start with its log
            built = ", ".join(variants) or "none: this build has no CPU variants"
            raise LLMUnavailable(f"{VARIANT_ENV}={chosen!r} is not a CPU variant of this build ({built})")
        fallbacks = [v for v in FALLBACK_VARIANTS if v in variants and v != chosen]
        while True:
            self._spawn(path, chosen)
            try:
                self._wait_ready(timeout)
                break
            except LLMUnavailable:
                if self.exit_code != -signal.SIGILL or not fallbacks:
                    raise
                failed, chosen = chosen or "the CPU variant ggml chose", fallbacks.pop(0)
                _log.warning(
                    "the embedded model server died of SIGILL on %s (an instruction this CPU advertises but does "
                    "not run); starting it again on the %s variant (set %s to choose one)",
                    failed, chosen, VARIANT_ENV,
                )  # fmt: skip
        atexit.register(self.stop)
        _announce(self)
        return self.endpoint

    def _spawn(self, path: Path, variant: str | None) -> None:
        assert self.model is not None
        self.port = _free_port()
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.settings.log_dir / f"llm-{self.model.alias}-{self.port}.log"
        cmd = [
            sys.executable, "-m", SERVER_MODULE,
            "--model", str(path), "--model_alias", self.model.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.settings.llm_ctx), "--n_threads", str(self.settings.llm_threads),
            # llama_cpp.server's default cuts the stream in progress whenever another request arrives, so
            # two users of one `zhiwen serve` broke each other's answers; queued, each answer completes.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        env = {**os.environ, VARIANT_ENV: variant} if variant else None
        with self.log_path.open("ab") as log:
            self.process = _spawner.submit(
                subprocess.Popen,
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                start_new_session=True,
            ).result()  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/v1/models"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                self.exit_code = None if self.process is None else self.process.returncode
                raise LLMUnavailable(
                    f"the embedded model server exited at start-up; see {self.log_path}:\n{self._log_tail()}",
                    public="the embedded model server exited at start-up (its log is on the server)",
                )
            with contextlib.suppress(httpx.HTTPError):
                # trust_env off: a corporate HTTP_PROXY without NO_PROXY would route 127.0.0.1 to the proxy.
                if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise LLMUnavailable(
            f"the embedded model server did not answer within {timeout:.0f}s; see {self.log_path}",
            public=f"the embedded model server did not answer within {timeout:.0f}s",
        )

    def _log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        _withdraw(self, proc.pid)
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


_servers: dict[str, LocalLLMServer] = {}
_lock = threading.Lock()


# A running embedded server is announced in ZHIWEN_HOME/run/, so that another zhiwen process of the same
# user (`zhiwen ask` beside `zhiwen serve` or `zhiwen chat`) uses it instead of loading the model again,
# which costs several seconds per command on a CPU. The announcement dies with the server: its owner
# removes it on stop, and a stale one (a killed owner) is recognised and removed by the next reader.


def _announcement(settings: Settings, model_key: str) -> Path:
    return settings.home / "run" / f"llm-{model_key}.json"


def _announce(server: LocalLLMServer) -> None:
    assert server.process is not None and server.model is not None
    path = _announcement(server.settings, server.model_key)
    with contextlib.suppress(OSError):  # an announcement is an optimisation: never a reason to fail
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": server.process.pid, "port": server.port, "alias": server.model.alias}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)


def _withdraw(server: LocalLLMServer, pid: int) -> None:
    path = _announcement(server.settings, server.model_key)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def _announced(settings: Settings, model_key: str) -> LLMEndpoint | None:
    """The endpoint of a live embedded server another process announced for ``model_key``, if any."""
    path = _announcement(settings, model_key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid, port, alias = int(record["pid"]), int(record["port"]), str(record["alias"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
        reply = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1.0, trust_env=False)
        served = [m.get("id") for m in reply.json().get("data", [])] if reply.status_code == 200 else []
    except (OSError, httpx.HTTPError, ValueError, AttributeError):
        served = []
    if alias not in served:  # gone, or the port now belongs to something else
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return LLMEndpoint(f"http://127.0.0.1:{port}/v1", alias)


def resolve_endpoint(settings: Settings, model_key: str | None = None) -> LLMEndpoint:
    """The configured endpoint (``ZHIWEN_LLM_BASE_URL``), or the embedded server: the one another zhiwen process
    of this ``ZHIWEN_HOME`` runs, else one started once per process."""
    if settings.llm_base_url:
        return LLMEndpoint(
            settings.llm_base_url.rstrip("/"), settings.llm_model or "default", settings.llm_api_key
        )
    key = model_key or settings.local_model
    with _lock:
        server = _servers.get(key)
        if server is None or server.process is None or server.process.poll() is not None:
            if (shared := _announced(settings, key)) is not None:
                return shared
            server = LocalLLMServer(key, settings)
            server.start()
            _servers[key] = server
        return server.endpoint


def stop_all() -> None:
    """Stop every embedded server this process started."""
    with _lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


if os.environ.get("ZHIWEN_NO_ATEXIT") is None:
    atexit.register(stop_all)
