"""Search and chat latency while four large uploads ingest, as a ratio to idle, for one or more source trees.

    .venv/bin/python benchmarks/ingest_contention.py --tree before=/path/to/worktree --tree after=.

Each tree's ``zhiwen serve`` runs as its own process (``PYTHONPATH`` = the tree) in a fresh ZHIWEN_HOME with a
small knowledge base, answering from a scripted OpenAI-compatible model (so the model costs nothing and what is
measured is zhiwen: retrieval, the graph, the server). First idle: search and chat requests one after another
for ``--idle`` seconds. Then four uploads of fresh text (nothing in the embedding cache) into four knowledge
bases start at once, and the same requests run until all four are ingested. A tree whose server answers an
upload with 202 (a job) is polled; an older one, whose upload answers when ingested, is waited on in threads.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ms_stats

from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer

WORDS = [
    "account",
    "balance",
    "transfer",
    "deposit",
    "loan",
    "rate",
    "fee",
    "card",
    "branch",
    "customer",
    "payment",
    "statement",
    "interest",
    "term",
    "mortgage",
    "credit",
    "limit",
    "currency",
    "exchange",
    "wire",
    "online",
    "mobile",
    "security",
    "verification",
    "identity",
    "savings",
    "checking",
    "overdraft",
    "annual",
    "monthly",
    "daily",
    "policy",
    "service",
    "hotline",
    "document",
    "application",
    "approval",
]
BANK = {
    "fees.md": "# Gold card\n\nThe annual fee of the gold card is 300 yuan. The first year is free of charge.\n",
    "wire.md": "# Wire transfers\n\nInternational wire transfers take three business days. The fee is 15 dollars.\n",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_text(rng: random.Random, chars: int) -> str:
    """Sentences of bank words, different every run: the embedding cache cannot answer them."""
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
        out.append(sentence)
        n += len(sentence) + 1
    return " ".join(out)


def start_server(tree: Path, home: Path, llm_url: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
    env |= {"PYTHONPATH": str(tree), "ZHIWEN_HOME": str(home), "ZHIWEN_ALLOW_OPEN": "true"}
    env |= {
        "ZHIWEN_LLM_BASE_URL": llm_url,
        "ZHIWEN_LLM_MODEL": "scripted",
        "ZHIWEN_RATE_PER_MINUTE": "1000000",
    }
    docs = home.parent / "bank-docs"
    docs.mkdir(exist_ok=True)
    for name, text in BANK.items():
        (docs / name).write_text(text, encoding="utf-8")
    cli = [sys.executable, "-m", "zhiwen.cli"]
    subprocess.run([*cli, "ingest", str(docs), "--kb", "bank"], env=env, check=True, capture_output=True)
    port = free_port()
    log = (home.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home.parent
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/live", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server of {tree} did not start; see {home.parent / 'serve.log'}")
        time.sleep(0.2)


def probe(c: httpx.Client, stop: threading.Event, out: dict[str, list[float]]) -> None:
    """Search, then chat, again and again, until ``stop``."""
    while not stop.is_set():
        probe_once(c, out)


def probe_once(c: httpx.Client, out: dict[str, list[float]]) -> None:
    """One search and one chat request, timed; the question varies so no cache answers it."""
    extra = " ".join(random.sample(WORDS, 3))
    t = time.perf_counter()
    r = c.post("/v1/kbs/bank/search", json={"query": f"gold card annual fee {extra}"})
    out["search"].append(time.perf_counter() - t)
    assert r.status_code == 200, r.text
    t = time.perf_counter()
    question = f"What is the gold card's annual fee ({extra})?"
    body = {"model": "bank", "messages": [{"role": "user", "content": question}]}
    r = c.post("/v1/chat/completions", json=body)
    out["chat"].append(time.perf_counter() - t)
    assert r.status_code == 200, r.text


def upload_all(c: httpx.Client, texts: list[str]) -> float:
    """Upload one text into each of len(texts) knowledge bases at once; seconds until all are ingested."""
    for i in range(len(texts)):
        c.post("/v1/kbs", json={"name": f"big{i}"})
    start = time.perf_counter()
    results: list[httpx.Response] = []

    def send(i: int) -> None:
        files = [("files", (f"big{i}.txt", texts[i].encode(), "text/plain"))]
        results.append(c.post(f"/v1/kbs/big{i}/documents", files=files, timeout=3600))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if r.status_code == 202:  # a job: wait for it
            job = r.json()
            while job["status"] not in ("done", "failed"):
                time.sleep(0.2)
                job = c.get(f"/v1/kbs/{job['knowledge_base']}/jobs/{job['id']}").json()
            assert job["status"] == "done", job
        else:
            assert r.status_code == 201, r.text
    return time.perf_counter() - start


def measure(name: str, tree: Path, idle: float, chars: int, seed: int) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix=f"zhiwen-contention-{name}-"))
    with ScriptedLLMServer(
        ScriptedLLM(default=Script("The annual fee of the gold card is 300 yuan."))
    ) as llm:
        proc, url = start_server(tree, scratch / "home", llm.base_url)
        try:
            with httpx.Client(base_url=url, timeout=600) as c:
                warm: dict[str, list[float]] = {"search": [], "chat": []}
                for _ in range(3):  # the first search opens the knowledge base, the first chat makes models
                    probe_once(c, warm)
                quiet: dict[str, list[float]] = {"search": [], "chat": []}
                stop = threading.Event()
                worker = threading.Thread(target=probe, args=(c, stop, quiet))
                worker.start()
                time.sleep(idle)
                stop.set()
                worker.join()
                rng = random.Random(seed)
                texts = [fresh_text(rng, chars) for _ in range(4)]
                busy: dict[str, list[float]] = {"search": [], "chat": []}
                stop = threading.Event()
                worker = threading.Thread(target=probe, args=(c, stop, busy))
                worker.start()
                ingest_s = upload_all(c, texts)
                stop.set()
                worker.join()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "tree": name,
        "idle": {k: ms_stats(v) for k, v in quiet.items()},
        "ingesting": {k: ms_stats(v) for k, v in busy.items()},
        "ingest_seconds": round(ingest_s, 1),
        "chars_per_upload": chars,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tree", action="append", default=[], help="NAME=PATH of a zhiwen source tree (repeatable)"
    )
    p.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    p.add_argument("--chars", type=int, default=12000, help="characters per upload (about 600 a chunk)")
    p.add_argument("--seed", type=int, default=None, help="text seed (default: a new one per run)")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON result (default results/ingest-contention-<date>.json)"
    )
    args = p.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["current", "."]]
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    results = [
        measure(name, Path(path).resolve(), args.idle, args.chars, seed + i)
        for i, (name, path) in enumerate(trees)
    ]
    print(
        "| tree | search p50 / p95 idle (ms) | search p50 / p95 ingesting | p95 ratio | chat p50 / p95 idle | chat p50 / p95 ingesting | p95 ratio | 4 uploads ingested in |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        row = [r["tree"]]
        for leg in ("search", "chat"):
            i, b = r["idle"][leg], r["ingesting"][leg]
            row += [
                f"{i['p50']:.0f} / {i['p95']:.0f}",
                f"{b['p50']:.0f} / {b['p95']:.0f}",
                f"{b['p95'] / i['p95']:.1f}x",
            ]
        row.append(f"{r['ingest_seconds']} s")
        print("| " + " | ".join(row) + " |")
    out = (
        args.out or Path(__file__).parent / "results" / f"ingest-contention-{time.strftime('%Y-%m-%d')}.json"
    )
    out.write_text(json.dumps({"machine": os.cpu_count(), "results": results}, indent=2), encoding="utf-8")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
