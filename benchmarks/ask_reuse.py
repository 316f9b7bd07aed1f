"""`zhiwen ask` wall time, alone (it starts its own embedded model) and beside a running `zhiwen serve` (it uses
that server's model), side by side in one run.

    .venv/bin/python benchmarks/ask_reuse.py [--runs 3] [--local-model qwen2.5-0.5b]

Everything runs in a fresh ZHIWEN_HOME holding the bundled sample knowledge base; the question is the same each
time, so the difference is the model's start-up (process start, loading the GGUF, the first prompt's cache).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx

QUESTION = "What is the annual fee of the gold credit card?"


def _zhiwen(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "zhiwen.cli", *args], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"zhiwen {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--local-model", default="qwen2.5-0.5b")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="zhiwen-ask-reuse-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
    env |= {"ZHIWEN_HOME": str(home), "ZHIWEN_LOCAL_MODEL": args.local_model, "ZHIWEN_ALLOW_OPEN": "true"}
    sample = Path(str(resources.files("zhiwen") / "sample_kb"))
    _zhiwen(env, "ingest", str(sample))
    ask = ("ask", QUESTION, "--json")
    alone = [_zhiwen(env, *ask) for _ in range(args.runs)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "zhiwen.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("zhiwen serve did not become ready")
            time.sleep(0.5)
        beside = [_zhiwen(env, *ask) for _ in range(args.runs)]
    finally:
        server.terminate()
        server.wait(30)
    result = {"model": args.local_model, "runs": args.runs, "cpus": os.cpu_count(),
              "alone_s": [round(x, 2) for x in alone], "beside_serve_s": [round(x, 2) for x in beside]}  # fmt: skip
    print(json.dumps(result))
    med = sorted(alone)[len(alone) // 2], sorted(beside)[len(beside) // 2]
    print(f"zhiwen ask, median of {args.runs}: alone {med[0]:.1f} s | beside a running serve {med[1]:.1f} s "
          f"| saved {med[0] - med[1]:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
