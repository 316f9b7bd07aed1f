"""Entry point of the embedded model server process: llama-cpp-python's server, after CPU dispatch is set up.

    python -m zhiwen.tools.llama_serve --model M.gguf ...   # the arguments of python -m llama_cpp.server

:class:`zhiwen.tools.llm_server.LocalLLMServer` starts this rather than ``llama_cpp.server`` itself, so that a
``GGML_BACKEND_DL`` build (``scripts/setup.sh --cpu-dispatch``) finds its CPU variants: see
:mod:`zhiwen.tools.cpu_backends`. With the default AVX2 build it is ``llama_cpp.server`` unchanged.
"""

from __future__ import annotations

import sys

from zhiwen.tools.cpu_backends import load_cpu_variants, loaded_cpu_backend


def main() -> None:
    import llama_cpp.server.__main__ as llama_server  # imports llama_cpp: libllama and libggml are loaded

    if load_cpu_variants():
        # One line in the model server's log: which variant this CPU got.
        print(f"zhiwen: llama.cpp CPU backend {loaded_cpu_backend()}", file=sys.stderr, flush=True)
    llama_server.main()  # type: ignore[no-untyped-call]  # llama-cpp-python is untyped


if __name__ == "__main__":
    main()
