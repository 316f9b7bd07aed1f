"""llama.cpp's run-time CPU dispatch, for a llama-cpp-python built with ``GGML_BACKEND_DL``.

``bash scripts/setup.sh --cpu-dispatch`` builds llama.cpp with ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON``:
the CPU code is then not linked in, but shipped as one ``libggml-cpu-<variant>.so`` per x86-64 level
(haswell = AVX2, skylakex = AVX-512, icelake = AVX-512 VNNI, sapphirerapids = AMX, zen4, ...). ggml scores each
against the running CPU and loads the best, but only from the folders ``ggml_backend_load_all`` searches: the
executable's (the Python interpreter's) and the working directory. llama-cpp-python 0.3.36 never calls
``ggml_backend_load_all_from_path`` (abetlen/llama-cpp-python#2069), so such a build fails at the first model
load with "Failed to load model from file". :func:`load_cpu_variants` makes that call on the package's own
library folder, before the model loads; with the AVX2 build of ``scripts/setup.sh`` it does nothing.

Standard library only (ctypes): it runs in the model server's process before llama.cpp loads a model.

    python -m zhiwen.tools.cpu_backends              # which variant this CPU loads, and its features
    python -m zhiwen.tools.cpu_backends --installed  # exit 0 only if the installed build dispatches
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import re
import sys
from pathlib import Path

__all__ = ["backend_dir", "cpu_variants", "load_cpu_variants", "loaded_cpu_backend"]

_VARIANT = re.compile(r"^libggml-cpu-(?P<name>[\w.]+)\.so$")


def backend_dir() -> Path | None:
    """The installed llama-cpp-python's ``lib`` folder, found without importing (and so loading) it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).resolve().parent / "lib"
    return lib if lib.is_dir() else None


def cpu_variants(lib_dir: Path | None) -> list[str]:
    """The CPU variants a ``GGML_BACKEND_DL`` build ships in ``lib_dir`` (empty for a single-CPU build)."""
    if lib_dir is None:
        return []
    return sorted(m["name"] for p in lib_dir.iterdir() if (m := _VARIANT.match(p.name)))


def load_cpu_variants(lib_dir: Path | None = None) -> bool:
    """Have ggml load the best CPU variant from ``lib_dir``; False (nothing done) for a build without them.

    Call it in the process that will load a model, after ``import llama_cpp`` and before the first model.
    The handle is ``libggml.so.0``, the soname libllama links: a wheel stores ``libggml.so`` and
    ``libggml.so.0`` as two copies, and the first would be a second ggml with a registry of its own.
    """
    lib_dir = lib_dir if lib_dir is not None else backend_dir()
    if not cpu_variants(lib_dir):
        return False
    assert lib_dir is not None
    libggml = ctypes.CDLL(str(lib_dir / "libggml.so.0"))
    load = libggml.ggml_backend_load_all_from_path
    load.argtypes, load.restype = [ctypes.c_char_p], None
    load(str(lib_dir).encode())
    return True


def loaded_cpu_backend() -> str | None:
    """The ggml CPU library mapped into this process (its file name), or None before a backend loads."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = re.findall(r"/(libggml-cpu[^/\s]*\.so[^/\s]*)$", maps, flags=re.MULTILINE)
    return sorted(set(found))[0] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zhiwen.tools.cpu_backends",
        description="Report the installed llama.cpp's CPU build: AVX2 only, or run-time dispatch between variants.",
    )
    parser.add_argument(
        "--installed",
        action="store_true",
        help="only check that the installed build ships CPU variants (exit 1 if not)",
    )
    args = parser.parse_args(argv)
    lib_dir = backend_dir()
    if lib_dir is None:
        print("llama-cpp-python is not installed (bash scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    variants = cpu_variants(lib_dir)
    if args.installed:
        if not variants:
            print("the installed llama.cpp is a single-CPU build (no run-time dispatch)", file=sys.stderr)
            return 1
        print(f"llama.cpp with run-time CPU dispatch: {', '.join(variants)}")
        return 0
    import llama_cpp  # loads libllama and libggml; the CPU variant loads below

    if load_cpu_variants(lib_dir):
        print(f"run-time CPU dispatch between {len(variants)} variants: {', '.join(variants)}")
    else:
        print("single-CPU build (AVX2 from scripts/setup.sh, unless built otherwise)")
    llama_cpp.llama_backend_init()
    print(f"CPU backend in use: {loaded_cpu_backend() or 'linked into libggml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
