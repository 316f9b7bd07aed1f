#!/usr/bin/env python
"""知问 answer-cache benchmark: time to the first answer text of a fresh turn against the same question cached.

    .venv/bin/python benchmarks/answer_cache.py                     # embedded default model, 6 questions
    .venv/bin/python benchmarks/answer_cache.py --base-url http://gpu:8000/v1 --model Qwen2.5-7B-Instruct

The bundled sample knowledge base is ingested into a temporary ``ZHIWEN_HOME``; the graph runs in-process with
an ``InMemorySaver`` and ``Context(answer_cache=True)`` against the in-process cache, through
``zhiwen.turns.stream_turn`` as the CLI and the server run it. Each question is asked once (fresh: TTFT is the
first streamed token) and then again in a new thread (cached: the whole answer arrives in the final event, so
its TTFT is that event). Only answers the gate passed are cached; a question whose fresh answer was refused
is reported as such. Results: a table and ``benchmarks/results/answer-cache-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ms_stats
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
console = Console(width=None if sys.stdout.isatty() else 160)
QUESTIONS = [
    "金卡的年费是多少？",
    "What is the annual fee of the gold card?",
    "How long does an international wire transfer take?",
    "安心贷的年利率是多少？",
    "开户需要带什么证件？",
    "What is the fee for an international wire transfer?",
]


async def ask(graph: Any, ctx: Any, question: str, thread: str) -> dict[str, Any]:
    from zhiwen.turns import stream_turn

    first, final, total = math.nan, {}, math.nan
    async for event in stream_turn(graph, question, ctx, thread):
        if event.kind == "token" and math.isnan(first):
            first = event.elapsed
        elif event.kind == "final":
            final, total = event.state, event.elapsed
    quality = final.get("quality", {})
    return {
        "ttft_s": round(total if math.isnan(first) else first, 4),
        "total_s": round(total, 4),
        "verdict": quality.get("verdict"),
        "cached": bool(quality.get("cached")),
        "answer": final.get("answer", ""),
    }


async def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    from zhiwen.graph.builder import build
    from zhiwen.graph.context import context_from_settings
    from zhiwen.settings import Settings, get_settings
    from zhiwen.tools.llm_server import resolve_endpoint

    models = Settings().home / "models"  # the assembled model file is large: link it, do not copy it
    models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(models, target_is_directory=True)
    os.environ.update({"ZHIWEN_HOME": str(home), "ZHIWEN_ANSWER_CACHE": "memory"})
    if args.base_url:
        os.environ.update({"ZHIWEN_LLM_BASE_URL": args.base_url, "ZHIWEN_LLM_MODEL": args.model or ""})
    zhiwen = [sys.executable, "-m", "zhiwen.cli"]
    subprocess.run([*zhiwen, "ingest", str(REPO / "zhiwen" / "sample_kb"), "--kb", "sample"],
                   env=dict(os.environ), check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    get_settings.cache_clear()
    console.print(f"starting the model endpoint ({args.base_url or get_settings().local_model}) ...")
    endpoint = await asyncio.to_thread(resolve_endpoint, get_settings())
    ctx = context_from_settings(kb="sample")
    assert ctx.answer_cache, "ZHIWEN_ANSWER_CACHE=memory turns the cache on"
    graph = build().compile(checkpointer=InMemorySaver())
    rows = []
    for i, question in enumerate(QUESTIONS[: args.questions]):
        fresh = await ask(graph, ctx, question, f"fresh-{i}")
        again = await ask(graph, ctx, question, f"again-{i}")
        rows.append({"question": question, "fresh": fresh, "again": again})
        console.print(
            f"{question}: fresh {fresh['ttft_s']:.2f} s ({fresh['verdict']}), "
            f"again {again['ttft_s'] * 1000:.1f} ms ({'cached' if again['cached'] else 'not cached'})",
            markup=False,
        )
    hits = [r for r in rows if r["again"]["cached"]]
    return {
        "date": dt.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "endpoint": {"base_url": endpoint.base_url, "model": endpoint.model},
        "rows": rows,
        "fresh_ttft_ms": ms_stats([r["fresh"]["ttft_s"] for r in hits]) if hits else None,
        "cached_ttft_ms": ms_stats([r["again"]["ttft_s"] for r in hits]) if hits else None,
        "cached_same_answer": all(r["again"]["answer"] == r["fresh"]["answer"] for r in hits),
        "refused_not_cached": sum(
            1 for r in rows if r["fresh"]["verdict"] != "pass" and not r["again"]["cached"]
        ),
    }


def report(res: dict[str, Any]) -> None:
    table = Table(title=f"Answer cache: time to the first answer text ({res['endpoint']['model']})")
    for col in (
        "questions cached",
        "fresh p50 ms",
        "fresh p95 ms",
        "cached p50 ms",
        "cached p95 ms",
        "speed-up p50",
    ):
        table.add_column(col)
    fresh, cached = res["fresh_ttft_ms"], res["cached_ttft_ms"]
    n = sum(1 for r in res["rows"] if r["again"]["cached"])
    if fresh and cached:
        table.add_row(
            f"{n}/{len(res['rows'])}", f"{fresh['p50']:.0f}", f"{fresh['p95']:.0f}", f"{cached['p50']:.1f}",
            f"{cached['p95']:.1f}", f"{fresh['p50'] / max(cached['p50'], 1e-6):.0f}x",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"cached answers identical to the fresh ones: {res['cached_same_answer']}; "
        f"refused fresh answers not cached: {res['refused_not_cached']}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=len(QUESTIONS), help="how many of the sample questions")
    ap.add_argument("--base-url", help="an OpenAI-compatible endpoint instead of the embedded model")
    ap.add_argument("--model", help="the model name at --base-url")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = asyncio.run(run(args, Path(tmp)))
    report(res)
    out = REPO / "benchmarks" / "results" / f"answer-cache-{res['date']}.json"
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False), encoding="utf-8")
    console.print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
