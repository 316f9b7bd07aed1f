#!/usr/bin/env python
"""Prompt budget: answer quality against prompt tokens, for ``top_k``, ``source_chars`` and the system prompt.

    ZHIWEN_DATASETS=../shared/datasets .venv/bin/python benchmarks/prompt_budget.py            # the grid below
    ZHIWEN_DATASETS=... .venv/bin/python benchmarks/prompt_budget.py --budgets k3-c400 k2-c250 --limit xquad-en-quick=10

On a CPU the prompt is most of a turn (llama.cpp processes it at tens of tokens per second), so every token
shown to the model has to earn its place. Each budget is a ``Context`` setting (``top_k`` chunks, about
``source_chars`` characters per chunk) and a system prompt, ``full`` (the product's) or ``short`` (the same
rules in about half the tokens, defined here only). For each budget, the real graph answers the first questions
of the quick suites (the suites' own ``hybrid`` configuration otherwise: embedded Qwen2.5 0.5B, the quality gate
and its quote fall-back on), through ``zhiwen.evals.runner.run_suite``, so the records and metrics are those of
``zhiwen eval``. Runs are resumable: records go to ``--out`` (one folder per suite, one records file per budget).

Prompt tokens are counted exactly: every answering request's messages (``build_messages``, wrapped here) are put
in Qwen's chat template and tokenized with the model's own vocabulary (llama.cpp, ``vocab_only``). Retries count:
a turn's cost is all its requests. ``system`` is the system prompt's share, which llama.cpp keeps in its prompt
cache from one request to the next; ``new`` is the rest, what each request processes.

Output: a table per suite and overall, and ``benchmarks/results/prompt-budget-<date>.json``. Latency figures
are the machine's at the time (see ``load``); quality and token counts do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime as dt
import json
import os
import statistics
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import zhiwen.evals.runner as runner
import zhiwen.nodes.generate as generate
import zhiwen.nodes.prompts as prompts
from zhiwen.evals.dataset import load_eval_set
from zhiwen.evals.suite import Configuration, Suite, load_suite
from zhiwen.evals.summary import gate_ledger, read_records, rescore, summarize
from zhiwen.tools.cpu_backends import load_cpu_variants
from zhiwen.tools.models import resolve_model

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SUITES = {"xquad-en-quick": 60, "rgb-zh-quick": 30, "cmrc2018-dev-quick": 60}  # suite -> first N questions

# The product's rules (answer only from the context, cite [n], the exact refusal sentence the gate recognises),
# said in about half the tokens. Only this benchmark uses it.
SHORT_SYSTEM = {
    "zh": "你是知问，{role}。只依据【资料】回答，不编造。{fence}句后用[n]注明来源。资料没有答案时只回答：“知识库中没有找到相关信息。”",
    "en": (
        "You are Zhiwen, a {role}. Answer only from the [Context], inventing nothing.{fence} Cite [n] after "
        'each sentence. If the context lacks the answer, reply only: "The knowledge base does not contain this '
        'information." Answer briefly in English.'
    ),
}


@dataclass(frozen=True)
class Budget:
    name: str
    top_k: int
    source_chars: int
    system: str  # "full" or "short"


GRID = {
    b.name: b
    for b in (
        Budget("k3-c400", 3, 400, "full"),  # the product's default
        Budget("k2-c400", 2, 400, "full"),
        Budget("k3-c250", 3, 250, "full"),
        Budget("k2-c250", 2, 250, "full"),
        Budget("k3-c400-short", 3, 400, "short"),
        Budget("k5-c400", 5, 400, "full"),
        Budget("k3-c600", 3, 600, "full"),
    )
}
DEFAULT_BUDGETS = ["k3-c400", "k2-c400", "k3-c250", "k2-c250", "k3-c400-short"]


class TokenCounter:
    """Counts the prompt tokens of every answering request, in Qwen's chat template (``<|im_start|>``).

    Each request is a line of ``sink`` (set per run) with the question's id and which run of it this is: a
    question whose turn failed runs again when the benchmark is resumed, and only its last run counts.
    """

    def __init__(self, model_path: Path) -> None:
        import llama_cpp

        load_cpu_variants()  # a run-time dispatch build loads no model, not even its vocabulary, without it
        self.vocab = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        self.sink: Path | None = None
        self._original = (generate.build_messages, runner._answer)

    def _count(self, text: str) -> int:
        return len(self.vocab.tokenize(text.encode(), add_bos=False, special=True))

    def __enter__(self) -> TokenCounter:
        build_messages, answer = self._original

        def counted(state: Any, ctx: Any) -> Any:
            messages = build_messages(state, ctx)
            roles = {"system": "system", "human": "user", "ai": "assistant"}
            turns = [f"<|im_start|>{roles.get(m.type, m.type)}\n{m.content}<|im_end|>\n" for m in messages]
            system = self._count(turns[0]) if messages and messages[0].type == "system" else 0
            total = self._count("".join(turns) + "<|im_start|>assistant\n")
            question, run = _asking.get()
            if self.sink is not None:
                with self.sink.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"id": question, "run": run, "system": system, "total": total}) + "\n")
            return messages

        async def answering(graph: Any, q: Any, ctx: Any) -> Any:
            token = _asking.set((q.id, uuid.uuid4().hex))  # copied into the graph's tasks and threads
            try:
                return await answer(graph, q, ctx)
            finally:
                _asking.reset(token)

        generate.build_messages = counted  # both are looked up at call time
        runner._answer = answering
        return self

    def __exit__(self, *exc: object) -> None:
        generate.build_messages, runner._answer = self._original


_asking: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("asking", default=("?", "?"))


def _system_prompts(style: str) -> None:
    """Install the full (the product's own) or short system prompt templates for the next run."""
    prompts._SYSTEM_TEMPLATE.clear()
    prompts._SYSTEM_TEMPLATE.update(FULL_SYSTEM if style == "full" else SHORT_SYSTEM)


FULL_SYSTEM = dict(prompts._SYSTEM_TEMPLATE)


def _suite_for(base: Suite, budget: Budget) -> Suite:
    """The quick suite's ``hybrid`` configuration with this budget's ``top_k`` and ``source_chars``."""
    hybrid = next(c for c in base.configurations if c.name == "hybrid")
    config = Configuration(
        name=budget.name,
        context={**hybrid.context, "top_k": budget.top_k, "source_chars": budget.source_chars},
    )
    return base.model_copy(update={"configurations": [config], "floors": {}, "ceilings": {}})


def _tokens_file(out: Path, budget: str) -> Path:
    return out / "tokens" / f"{budget}.jsonl"


def run_one(suite_name: str, limit: int, budget: Budget, out: Path, counter: TokenCounter) -> None:
    base = load_suite(str(ROOT / "evals" / f"{suite_name}.yaml"))
    suite = _suite_for(base, budget)
    folder = out / suite_name
    counter.sink = _tokens_file(folder, budget.name)
    counter.sink.parent.mkdir(parents=True, exist_ok=True)
    _system_prompts(budget.system)
    try:
        asyncio.run(runner.run_suite(suite, folder, _progress(suite_name, budget.name), limit))
    finally:
        _system_prompts("full")
        counter.sink = None


def _progress(suite: str, budget: str) -> Any:
    last = {"n": -1}

    def report(stage: str, done: int, total: int) -> None:
        if stage != "ingest" and done != last["n"]:
            last["n"] = done
            print(f"\r{suite} {budget}: {done}/{total}", end="", file=sys.stderr, flush=True)
            if done == total:
                print(file=sys.stderr)

    return report


def _last_runs_calls(path: Path, answered: set[str]) -> list[dict[str, int]]:
    """The requests of each answered question's last run (an earlier, failed run of it does not count)."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    last_run = {c["id"]: c["run"] for c in lines}
    return [c for c in lines if c["id"] in answered and c["run"] == last_run[c["id"]]]


def _stats(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def summarise(out: Path, budgets: list[Budget], limits: dict[str, int]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for budget in budgets:
        per_suite: dict[str, Any] = {}
        all_records: list[dict[str, Any]] = []
        all_calls: list[dict[str, int]] = []
        for suite_name, limit in limits.items():
            folder = out / suite_name
            path = folder / "records" / f"{budget.name}.jsonl"
            if not path.exists():
                continue
            base = load_suite(str(ROOT / "evals" / f"{suite_name}.yaml"))
            asked = [q.id for q in load_eval_set(base).questions[:limit]]
            by_id = {r["id"]: r for r in rescore(read_records(path), base)}
            records = [by_id[i] for i in asked if i in by_id]
            calls = _last_runs_calls(
                _tokens_file(folder, budget.name), {r["id"] for r in records if "error" not in r}
            )
            row = summarize(records, base)
            ledger = gate_ledger(records, base)
            per_suite[suite_name] = _row(row, ledger, calls, len(records))
            all_records += [r | {"suite": suite_name} for r in records]
            all_calls += calls
        answerable = [r for r in all_records if not r.get("negative")]
        pooled = {
            "questions": len(all_records),
            "containment": _mean([r["containment"] for r in answerable if "containment" in r]),
            "false_refusal": _mean([float(r["refused"]) for r in answerable if "refused" in r]),
            "correct_refusal": _mean([float(r["refused"]) for r in all_records if r.get("negative")]),
            "prompt_tokens_per_turn": round(sum(c["total"] for c in all_calls) / max(1, len(all_records)), 1),
            "new_tokens_per_request": _stats([c["total"] - c["system"] for c in all_calls]),
            "generation_p50_s": _median(
                [r["timings"]["generation"] for r in all_records if "generation" in r.get("timings", {})]
            ),
        }
        table[budget.name] = {"budget": budget.__dict__, "suites": per_suite, "pooled": pooled}
    return table


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _row(row: dict[str, Any], ledger: dict[str, int], calls: list[dict[str, int]], n: int) -> dict[str, Any]:
    return {
        "questions": n,
        "containment": row.get("containment"),
        "false_refusal": row.get("false_refusal"),
        "correct_refusal": row.get("correct_refusal") if row.get("negatives") else None,
        "wrong_answers_passed": ledger.get("answered_wrong", 0) + ledger.get("quoted_wrong", 0),
        "requests": len(calls),
        "prompt_tokens_per_request": _stats([c["total"] for c in calls]),
        "system_tokens": _stats([c["system"] for c in calls]),
        "prompt_tokens_per_turn": round(sum(c["total"] for c in calls) / max(1, n), 1),
        "generation_p50_s": row.get("generation_p50_s"),
        "latency_p50_s": row.get("latency_p50_s"),
    }


def _print(table: dict[str, Any]) -> None:
    console = Console(width=170)
    for suite in SUITES:
        t = Table(title=suite)
        for col in ("budget", "n", "containment", "false refusal", "neg. refused", "wrong passed",
                    "tokens/request", "system", "tokens/turn", "gen p50 s"):  # fmt: skip
            t.add_column(col, justify="right")
        for name, entry in table.items():
            r = entry["suites"].get(suite)
            if r:
                t.add_row(name, str(r["questions"]), *(str(r[k]) for k in (
                    "containment", "false_refusal", "correct_refusal", "wrong_answers_passed",
                    "prompt_tokens_per_request", "system_tokens", "prompt_tokens_per_turn", "generation_p50_s")))  # fmt: skip
        console.print(t)
    t = Table(title="pooled")
    for col in (
        "budget",
        "n",
        "containment",
        "false refusal",
        "neg. refused",
        "tokens/turn",
        "new tokens/request",
        "gen p50 s",
    ):
        t.add_column(col, justify="right")
    for name, entry in table.items():
        p = entry["pooled"]
        t.add_row(name, str(p["questions"]), *(str(p[k]) for k in (
            "containment", "false_refusal", "correct_refusal", "prompt_tokens_per_turn", "new_tokens_per_request",
            "generation_p50_s")))  # fmt: skip
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--budgets",
        nargs="+",
        default=DEFAULT_BUDGETS,
        choices=sorted(GRID),
        metavar="BUDGET",
        help=f"budgets to run, in order (default: {' '.join(DEFAULT_BUDGETS)}; known: {', '.join(GRID)})",
    )
    parser.add_argument(
        "--limit",
        nargs="+",
        default=[],
        metavar="SUITE=N",
        help="first N questions of a suite (default: "
        + ", ".join(f"{s}={n}" for s, n in SUITES.items())
        + ")",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "evals" / "runs" / "prompt-budget",
        help="records folder (resumable; default: evals/runs/prompt-budget)",
    )
    parser.add_argument("--report-only", action="store_true", help="summarise the records already in --out")
    args = parser.parse_args()
    limits = dict(SUITES)
    for item in args.limit:
        name, _, n = item.partition("=")
        if name not in SUITES or not n.isdigit() or int(n) < 1:
            parser.error(f"--limit takes SUITE=N with SUITE one of {', '.join(SUITES)}: got {item!r}")
        limits[name] = int(n)
    if "ZHIWEN_DATASETS" not in os.environ:
        parser.error("set ZHIWEN_DATASETS to the folder holding xquad-en, rgb-zh and cmrc2018-dev")
    budgets = [GRID[b] for b in args.budgets]
    load_before = os.getloadavg()
    if not args.report_only:
        from zhiwen.settings import get_settings

        key = str(load_suite(str(ROOT / "evals" / "xquad-en-quick.yaml")).model["local_model"])
        model = resolve_model(key, get_settings().home)
        with TokenCounter(model) as counter:
            for budget in budgets:
                for suite_name, limit in limits.items():
                    run_one(suite_name, limit, budget, args.out, counter)
    table = summarise(args.out, budgets, limits)
    _print(table)
    result = {
        "date": dt.date.today().isoformat(),
        # the machine's load while this sitting ran turns (none with --report-only: the records' own time)
        "load_before": None if args.report_only else [round(x, 2) for x in load_before],
        "load_after": None if args.report_only else [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "limits": limits,
        "budgets": table,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"prompt-budget-{result['date']}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"results: {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
