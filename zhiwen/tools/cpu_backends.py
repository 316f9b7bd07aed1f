"""llama.cpp's run-time CPU dispatch, for a llama-cpp-python built with ``GGML_BACKEND_DL``.

``bash scripts/setup.sh`` builds llama.cpp with ``GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON``:
the CPU code is then not linked in, but shipped as one ``libggml-cpu-<variant>.so`` per x86-64 level
(haswell = AVX2, skylakex = AVX-512, icelake = AVX-512 VNNI, sapphirerapids = AMX, zen4, ...). ggml scores each
against the running CPU and loads the best, but only from the folders ``ggml_backend_load_all`` searches: the
executable's (the Python interpreter's) and the working directory. llama-cpp-python 0.3.36 never calls
``ggml_backend_load_all_from_path`` (abetlen/llama-cpp-python#2069), so such a build fails at the first model
load with "Failed to load model from file". :func:`load_cpu_variants` makes that call, before the model loads,
on the folder the wheel put the variants in: ggml's own install rule sends them to ``bin/`` of the install
prefix, which for a wheel is ``site-packages/bin`` (pip records them, so uninstalling removes them); a build
that copies them beside ``libllama.so`` in ``llama_cpp/lib`` is found too. With a single-CPU build (``scripts/setup.sh
--avx2``, or llama-cpp-python installed by hand) it does nothing.

ggml picks a variant from what the CPU advertises (CPUID). A virtual machine can advertise instructions it then
refuses: the stock ``-march=native`` build died with "Illegal instruction" on such a Xeon. So the model server
(:mod:`zhiwen.tools.llama_serve`) decodes a few tokens before it serves, and :mod:`zhiwen.tools.llm_server`
restarts a server killed by SIGILL on the variants of :data:`FALLBACK_VARIANTS`, named in ``ZHIWEN_LLAMA_CPU_VARIANT``.

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

__all__ = [
    "FALLBACK_VARIANTS",
    "VARIANT_ENV",
    "backend_dir",
    "cpu_variants",
    "load_cpu_variants",
    "loaded_cpu_backend",
    "variant_dir",
]

_VARIANT = re.compile(r"^libggml-cpu-(?P<name>[\w.]+)\.so$")
VARIANT_ENV = "ZHIWEN_LLAMA_CPU_VARIANT"  # a variant to load instead of the one ggml would choose
# Tried in turn after a SIGILL: haswell is AVX2/FMA/F16C, what the single-CPU build of setup.sh --avx2 is made for;
# x64 is plain x86-64 (SSE2), for a CPU that advertises even AVX2 falsely.
FALLBACK_VARIANTS = ("haswell", "x64")


def backend_dir() -> Path | None:
    """The installed llama-cpp-python's ``lib`` folder, found without importing (and so loading) it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).resolve().parent / "lib"
    return lib if lib.is_dir() else None


def cpu_variants(folder: Path | None) -> list[str]:
    """The ``libggml-cpu-<variant>.so`` variants in ``folder`` (none for a single-CPU build's folder)."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(m["name"] for p in folder.iterdir() if (m := _VARIANT.match(p.name)))


def variant_dir(lib_dir: Path | None) -> Path | None:
    """Where the CPU variants of the build whose ``llama_cpp/lib`` is ``lib_dir`` are: that folder, or the
    ``bin/`` folder of its site-packages (where the wheel installs them); None for a single-CPU build."""
    if lib_dir is None:
        return None
    for folder in (lib_dir, lib_dir.parent.parent / "bin"):
        if folder.is_dir() and cpu_variants(folder):
            return folder
    return None


def load_cpu_variants(lib_dir: Path | None = None, variant: str | None = None) -> bool:
    """Have ggml load the best CPU variant of the build in ``lib_dir`` (default: the installed one's
    ``llama_cpp/lib``), or the one named ``variant``; False, and nothing done, for a build without variants.

    Call it in the process that will load a model, after ``import llama_cpp`` and before the first model.
    The handle is ``libggml.so.0``, the soname libllama links: a wheel stores ``libggml.so`` and
    ``libggml.so.0`` as two copies, and the first would be a second ggml with a registry of its own.
    """
    lib_dir = lib_dir if lib_dir is not None else backend_dir()
    variants = variant_dir(lib_dir)
    if lib_dir is None or variants is None:
        return False
    libggml = ctypes.CDLL(str(lib_dir / "libggml.so.0"))
    if variant is None:
        load_all = libggml.ggml_backend_load_all_from_path
        load_all.argtypes, load_all.restype = [ctypes.c_char_p], None
        load_all(str(variants).encode())
        return True
    known = cpu_variants(variants)
    if variant not in known:
        raise ValueError(f"{VARIANT_ENV}={variant!r} is not a CPU variant of this build ({', '.join(known)})")
    load_one = libggml.ggml_backend_load  # loads and registers it; NULL if it cannot run on this CPU
    load_one.argtypes, load_one.restype = [ctypes.c_char_p], ctypes.c_void_p
    if not load_one(str(variants / f"libggml-cpu-{variant}.so").encode()):
        raise ValueError(f"{VARIANT_ENV}={variant!r}: ggml could not load that CPU variant here")
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
    variants = cpu_variants(variant_dir(lib_dir))
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
        print("single-CPU build, no run-time dispatch (scripts/setup.sh --avx2 makes one: AVX2, FMA, F16C)")
    llama_cpp.llama_backend_init()
    print(f"CPU backend in use: {loaded_cpu_backend() or 'linked into libggml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
