"""Entry point of the embedded model server process: llama-cpp-python's server, after CPU dispatch is set up.

    python -m zhiwen.tools.llama_serve --model M.gguf ...   # the arguments of python -m llama_cpp.server

:class:`zhiwen.tools.llm_server.LocalLLMServer` starts this rather than ``llama_cpp.server`` itself, so that a
``GGML_BACKEND_DL`` build (run-time CPU dispatch, what ``scripts/setup.sh`` builds) finds its CPU variants: see
:mod:`zhiwen.tools.cpu_backends`. With such a build it first decodes a few tokens, so that a variant using
instructions the CPU advertises but refuses kills this process with SIGILL at start-up, where the parent
restarts it on a safer variant, rather than at a user's first question. With a single-CPU build it is
``llama_cpp.server`` unchanged.
"""

from __future__ import annotations

import os
import sys

from zhiwen.tools.cpu_backends import VARIANT_ENV, load_cpu_variants, loaded_cpu_backend

PROBE_TEXT = (
    "知问 probe: a prompt long enough to run the batched matrix kernels, then one decoded token. 检查"
)


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def probe(model_path: str, threads: int) -> None:
    """Run the kernels a chat request runs (a batched prompt, then a single-token step) on a small context."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model_path, n_ctx=256, n_batch=64, n_threads=threads, verbose=False)
    try:
        tokens = llm.tokenize(PROBE_TEXT.encode(), add_bos=False)
        llm.eval(tokens)
        llm.eval(tokens[:1])
    finally:
        llm.close()


def main() -> None:
    import llama_cpp.server.__main__ as llama_server  # imports llama_cpp: libllama and libggml are loaded

    try:
        dispatching = load_cpu_variants(variant=os.environ.get(VARIANT_ENV) or None)
    except ValueError as exc:
        print(f"zhiwen: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if dispatching:
        # One line in the model server's log: which variant this CPU got.
        print(f"zhiwen: llama.cpp CPU backend {loaded_cpu_backend()}", file=sys.stderr, flush=True)
        model = _option(sys.argv, "--model")
        if model:
            probe(model, int(_option(sys.argv, "--n_threads") or os.cpu_count() or 1))
    llama_server.main()  # type: ignore[no-untyped-call]  # llama-cpp-python is untyped


if __name__ == "__main__":
    main()
