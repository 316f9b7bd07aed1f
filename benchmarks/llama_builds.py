#!/usr/bin/env python
"""Two llama-cpp-python builds side by side: prompt and generation tokens/s of the embedded Qwen 0.5B.

    .venv/bin/python benchmarks/llama_builds.py --build avx2=/tmp/llama-avx2 --build dispatch=/tmp/llama-dl
    .venv/bin/python benchmarks/llama_builds.py --build a=VENV_A --build b=VENV_B --reps 7 --threads 2 \\
        --compile-time a=290 --compile-time b=1500     # compile times from the build logs, recorded as given

Each ``--build NAME=PATH`` is a venv (or its python executable) holding llama-cpp-python. This script (run
with the project venv: it needs zhiwen to find the model, and rich) starts one worker per build: the same
file run with ``--worker`` by that build's python, which imports only the standard library, numpy and
llama_cpp. Every worker loads the same GGUF (Qwen2.5-Coder-0.5B-Instruct Q4_K_M unless ``--model``) with
the same settings (``n_threads`` = ``n_threads_batch`` = ``--threads``, ``n_ctx`` 4096, ``n_batch`` 512)
and builds the same prompt: a Qwen chat prompt whose user turn holds the bundled sample knowledge base
(Chinese) and the README (English), cut at whole pieces to at most ``--prompt-tokens`` tokens, then a
question. The token ids are hashed, so the table shows both builds evaluated the very same tokens.

One repetition: ``reset()`` (so the whole prompt is processed: no prefix reuse), evaluate the prompt, then
``--gen-tokens`` greedy decode steps (argmax of the logits, fed back one token at a time; an end-of-turn
token does not stop it, so every repetition decodes the same number of tokens). Tokens/s come from
llama.cpp's own counters (``llama_perf_context``: time inside decode), wall-clock is kept beside them.
Warm-up repetitions are dropped; the timed ones alternate between the workers (A B, B A, ...), so load from
other processes on a shared machine falls on both.

With ``GGML_BACKEND_DL`` the CPU backends are separate ``libggml-cpu-<variant>.so`` files that llama.cpp
only looks for beside the executable and in the working directory; llama-cpp-python 0.3.36 neither looks
elsewhere nor exposes ``ggml_backend_load_all_from_path``. So when the build ships such files (in
``site-packages/bin``, where the wheel installs them, or in ``llama_cpp/lib``), the worker has the product's
loader, ``zhiwen/tools/cpu_backends.py``, call that function before the first ``Llama``; the
JSON records whether the build loads without that help. The loaded variant is read from the process's
memory map and from llama.cpp's ``load_backend`` log line.

Results: a table on stdout and ``benchmarks/results/llama-builds-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MARK = "@@json "  # worker lines carrying results; llama.cpp may print anything else

SYSTEM = (
    "You are the knowledge-base assistant of Zhiwen Demo Bank. Answer only from the documents below, in the "
    "language of the question, and cite the document you used."
)
QUESTION = "金卡的年费是多少？如何免除次年年费？ / What is the Gold card annual fee, and how is it waived?"


# ------------------------------------------------------------------------------------------------ worker


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _mapped_cpu_backends() -> list[str]:
    """The ggml CPU backend libraries mapped into this process (``libggml-cpu*.so``)."""
    names = set()
    with open("/proc/self/maps") as f:
        for line in f:
            m = re.search(r"(/\S*libggml-cpu[^/\s]*\.so[^/\s]*)$", line.strip())
            if m:
                names.add(m.group(1))
    return sorted(names)


def _cpu_features(libggml: Any) -> dict[str, str]:
    """The CPU backend's ``ggml_backend_get_features`` (what the loaded code was built for)."""

    class _Feature(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]

    libggml.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    libggml.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    libggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    reg = libggml.ggml_backend_reg_by_name(b"CPU")
    if not reg:
        return {}
    addr = libggml.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    if not addr:
        return {}
    get = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)(addr)
    feats, out, i = get(reg), {}, 0
    while feats[i].name:
        out[feats[i].name.decode()] = feats[i].value.decode()
        i += 1
    return out


def _build_prompt(llm: Any, pieces: list[str], max_tokens: int) -> list[int]:
    head = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
    tail = f"\n\nQuestion: {QUESTION}<|im_end|>\n<|im_start|>assistant\n"

    def tok(text: str) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=False, special=True)

    body = ""
    for piece in pieces:
        candidate = body + piece + "\n\n"
        if len(tok(head + candidate + tail)) > max_tokens:
            break
        body = candidate
    return tok(head + body + tail)


def _cpu_backends_module() -> Any:
    """``zhiwen/tools/cpu_backends.py`` loaded from this checkout by path (the build's venv may lack zhiwen)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cpu_backends", ROOT / "zhiwen" / "tools" / "cpu_backends.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(args: argparse.Namespace) -> None:
    import llama_cpp
    import numpy as np

    backends = (
        _cpu_backends_module()
    )  # the product's loader, standard library only: any build's python runs it
    libdir = Path(llama_cpp.__file__).resolve().parent / "lib"
    variants = backends.cpu_variants(backends.variant_dir(libdir))
    info: dict[str, Any] = {
        "python": sys.executable,
        "llama_cpp_version": llama_cpp.__version__,
        "lib_dir": str(libdir),
        "lib_files": sorted(p.name for p in libdir.iterdir()),
        "dl_cpu_variants_shipped": variants,
        "preloaded": False,
    }
    # The libggml that libllama linked (soname libggml.so.0). Not llama_cpp._ggml.libggml: a wheel stores
    # libggml.so and libggml.so.0 as two copies, so that handle is a second ggml with its own registry.
    libggml = ctypes.CDLL(str(libdir / "libggml.so.0"))
    if variants and not args.no_preload:
        info["preloaded"] = backends.load_cpu_variants(libdir)
    sys.stderr.flush()
    try:
        llm = llama_cpp.Llama(
            model_path=args.model,
            n_ctx=args.n_ctx,
            n_batch=512,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )
    except Exception as exc:  # the stock DL build without preload ends here
        info.update(
            ok=False, error=f"{type(exc).__name__}: {exc}", mapped_cpu_backends=_mapped_cpu_backends()
        )
        _emit(info)
        return
    info.update(ok=True, mapped_cpu_backends=_mapped_cpu_backends())
    with contextlib.suppress(Exception):
        info["cpu_features"] = _cpu_features(libggml)
    if args.check_only:
        _emit(info)
        return
    pieces = json.loads(Path(args.pieces).read_text())
    tokens = _build_prompt(llm, pieces, args.prompt_tokens)
    info["prompt_tokens"] = len(tokens)
    info["prompt_sha256"] = hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:16]
    _emit(info)

    n_vocab = llm.n_vocab()
    for line in sys.stdin:
        if line.strip() != "run":
            break
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm.ctx)
        t0 = time.perf_counter()
        llm.eval(tokens)
        t1 = time.perf_counter()
        out: list[int] = []
        for _ in range(args.gen_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            out.append(int(logits.argmax()))
            llm.eval([out[-1]])
        llama_cpp.llama_synchronize(llm.ctx)  # llama.cpp books decode time at the next synchronize
        t2 = time.perf_counter()
        perf = llama_cpp.llama_perf_context(llm.ctx)
        _emit(
            {
                "n_p_eval": perf.n_p_eval,
                "t_p_eval_ms": round(perf.t_p_eval_ms, 3),
                "n_eval": perf.n_eval,
                "t_eval_ms": round(perf.t_eval_ms, 3),
                "prompt_wall_s": round(t1 - t0, 4),
                "gen_wall_s": round(t2 - t1, 4),
                "text": llm.detokenize(out).decode(errors="replace"),
            }
        )


# ------------------------------------------------------------------------------------------------ parent


def _python_of(path: str) -> str:
    p = Path(os.path.abspath(path))  # not resolve(): a venv's python is a symlink out of the venv
    exe = p / "bin" / "python" if p.is_dir() else p
    if not exe.exists():
        raise SystemExit(f"no python at {exe}")
    return str(exe)


def _pieces() -> list[str]:
    """Bilingual text from the repository, in a fixed order: the sample knowledge base, then the README."""
    kb = [p.read_text() for p in sorted((ROOT / "zhiwen" / "sample_kb").glob("*.md"))]
    readme = (ROOT / "README.md").read_text()
    paras = [p.strip() for p in readme.split("\n\n") if p.strip() and not p.lstrip().startswith("```")]
    return [f"[{i + 1}] {t}" for i, t in enumerate(kb)] + paras


class Worker:
    def __init__(self, name: str, python: str, args: argparse.Namespace, pieces_path: Path, log_dir: Path):
        self.name, self.python = name, python
        self.log_path = log_dir / f"{name}.log"
        cmd = [
            python,
            __file__,
            "--worker",
            "--model",
            args.model,
            "--threads",
            str(args.threads),
            "--n-ctx",
            str(args.n_ctx),
            "--prompt-tokens",
            str(args.prompt_tokens),
            "--gen-tokens",
            str(args.gen_tokens),
            "--pieces",
            str(pieces_path),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                cwd=tempfile.gettempdir(),
            )
        self.info = self._read()
        if not self.info.get("ok"):
            raise SystemExit(f"{name}: the model did not load: {self.info.get('error')}; see {self.log_path}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        raise SystemExit(f"{self.name}: worker exited (code {self.proc.wait()}); see {self.log_path}")

    def run(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        return self.log_path.read_text(errors="replace")


def _stock_load(python: str, args: argparse.Namespace) -> dict[str, Any]:
    """Does the build load the model with llama-cpp-python alone (no preload)? Run in a fresh process."""
    cmd = [
        python,
        __file__,
        "--worker",
        "--check-only",
        "--no-preload",
        "--model",
        args.model,
        "--threads",
        str(args.threads),
        "--n-ctx",
        str(args.n_ctx),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        return {"ok": False, "error": f"exit code {done.returncode}: {done.stderr.strip()[-300:]}"}
    info = json.loads(lines[-1][len(MARK) :])
    hint = [ln for ln in done.stderr.splitlines() if "no backends" in ln or "load_backend" in ln]
    return {"ok": info["ok"], "error": info.get("error"), "log": hint[:3]}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    pp = [r["n_p_eval"] / (r["t_p_eval_ms"] / 1000) for r in runs]
    tg = [r["n_eval"] / (r["t_eval_ms"] / 1000) for r in runs]
    pp_wall = [(r["n_p_eval"]) / r["prompt_wall_s"] for r in runs]
    tg_wall = [r["n_eval"] / r["gen_wall_s"] for r in runs]

    def stats(xs: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(xs), 2),
            "min": round(min(xs), 2),
            "max": round(max(xs), 2),
            "stdev": round(statistics.stdev(xs), 2) if len(xs) > 1 else 0.0,
        }

    return {
        "prompt_tps": stats(pp),
        "gen_tps": stats(tg),
        "prompt_tps_wall": stats(pp_wall),
        "gen_tps_wall": stats(tg_wall),
        "prompt_s_median": round(statistics.median(r["t_p_eval_ms"] for r in runs) / 1000, 3),
    }


def _machine() -> dict[str, Any]:
    model, flags = "", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = [
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi2",
        "avx_vnni",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_int8",
    ]
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "cpu_flags": {f: f in flags for f in wanted},
        "load_before": list(os.getloadavg()),
    }


def parent(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    if not args.model:
        from zhiwen.settings import Settings
        from zhiwen.tools.models import resolve_model

        args.model = str(resolve_model("qwen2.5-0.5b", Settings().home))
    builds = dict(b.split("=", 1) for b in args.build)
    if len(builds) < 2:
        raise SystemExit("give two builds: --build NAME=VENV --build NAME=VENV")
    compile_times = {k: float(v) for k, v in (c.split("=", 1) for c in args.compile_time)}
    machine = _machine()
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": machine,
        "config": {
            "model": Path(args.model).name,
            "threads": args.threads,
            "n_ctx": args.n_ctx,
            "n_batch": 512,
            "prompt_tokens_max": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "reps": args.reps,
            "warmup": args.warmup,
            "question": QUESTION,
        },
        "builds": {},
    }
    with tempfile.TemporaryDirectory(prefix="llama-builds-") as tmp:
        pieces_path = Path(tmp) / "pieces.json"
        pieces_path.write_text(json.dumps(_pieces(), ensure_ascii=False))
        stock = {name: _stock_load(_python_of(path), args) for name, path in builds.items()}
        workers = [
            Worker(name, _python_of(path), args, pieces_path, Path(tmp)) for name, path in builds.items()
        ]
        hashes = {w.info["prompt_sha256"] for w in workers}
        if len(hashes) != 1:
            console.print(f"[red]the builds tokenized the prompt differently: {hashes}")
        runs: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
        for w in workers:
            for _ in range(args.warmup):
                w.run()
        for rep in range(args.reps):
            for w in workers if rep % 2 == 0 else workers[::-1]:
                runs[w.name].append(w.run())
                console.print(
                    f"rep {rep + 1}/{args.reps} {w.name}: prompt {runs[w.name][-1]['t_p_eval_ms']:.0f} ms",
                    highlight=False,
                )
        for w in workers:
            log = w.close()
            loaded = re.findall(r"load_backend: loaded CPU backend from (\S+)", log)
            result["builds"][w.name] = {
                **w.info,
                "compile_time_s_from_build_log": compile_times.get(w.name),
                "loads_without_preload": stock[w.name],
                "load_backend_log": loaded,
                "summary": _summary(runs[w.name]),
                "runs": runs[w.name],
            }
    machine["load_after"] = list(os.getloadavg())

    table = Table(
        title=f"llama.cpp builds, {Path(args.model).name}, {args.threads} threads, "
        f"{workers[0].info['prompt_tokens']}-token prompt, {args.gen_tokens} generated, "
        f"median of {args.reps} (min-max)"
    )
    for col in (
        "build",
        "CPU backend loaded",
        "prompt tok/s",
        "gen tok/s",
        "prompt s",
        "loads alone",
        "compile",
    ):
        table.add_column(col, justify="left" if col in ("build", "CPU backend loaded") else "right")
    for name, b in result["builds"].items():
        s = b["summary"]
        backend = ", ".join(Path(p).name for p in b["mapped_cpu_backends"]) or "-"
        ct = b["compile_time_s_from_build_log"]
        table.add_row(
            name,
            backend,
            f"{s['prompt_tps']['median']:.1f} ({s['prompt_tps']['min']:.1f}-{s['prompt_tps']['max']:.1f})",
            f"{s['gen_tps']['median']:.1f} ({s['gen_tps']['min']:.1f}-{s['gen_tps']['max']:.1f})",
            f"{s['prompt_s_median']:.2f}",
            "yes" if b["loads_without_preload"]["ok"] else "no",
            f"{ct / 60:.1f} min" if ct else "-",
        )
    console.print(table)
    texts = {name: b["runs"][0]["text"] for name, b in result["builds"].items()}
    console.print(
        f"same greedy output: {len(set(texts.values())) == 1}; load {machine['load_before']} -> "
        f"{machine['load_after']}",
        highlight=False,
    )
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"llama-builds-{result['date']}.json"
    pythons = {name: _python_of(path) for name, path in (b.split("=", 1) for b in args.build)}
    out.write_text(without_machine_paths(json.dumps(result, ensure_ascii=False, indent=1), pythons) + "\n")
    console.print(f"wrote {out}")


def without_machine_paths(text: str, builds: dict[str, str] | None = None) -> str:
    """``text`` with this machine's folders shortened (each build's venv as ``<name>-venv``, others relative to
    here, the home folder as ``~``): a committed result must not name a path of the machine that measured it."""
    for name, python in (builds or {}).items():
        venv = Path(python).parent.parent  # .../VENV/bin/python
        text = text.replace(str(venv) + "/", f"{name}-venv/").replace(
            str(venv.resolve()) + "/", f"{name}-venv/"
        )
    return text.replace(str(Path.cwd()) + "/", "").replace(str(Path.home()), "~")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="NAME=VENV",
        help="a venv (or python) with llama-cpp-python; give two",
    )
    parser.add_argument("--model", default="", help="GGUF path (default: the embedded Qwen 0.5B)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prompt-tokens", type=int, default=1200, help="prompt length cap, in tokens")
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--compile-time",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="compile time read from the build's log, recorded as given",
    )
    parser.add_argument("--out", default="", help="JSON path (default results/llama-builds-<date>.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-preload", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pieces", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
