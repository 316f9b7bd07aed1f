"""Run-time CPU dispatch: which builds ship variants, and that the loader hands ggml the right folder.

The real dispatch build is what ``scripts/setup.sh`` installs, and every test that starts the embedded model
runs through the loader; here the ctypes call is also checked against a stand-in ``libggml.so.0`` compiled from
a few lines of C, which records the folder it is asked to load from, so the folder logic is tested on any build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zhiwen.tools import cpu_backends
from zhiwen.tools.cpu_backends import backend_dir, cpu_variants, load_cpu_variants, variant_dir

STAND_IN = r"""
#include <stdio.h>
void ggml_backend_load_all_from_path(const char * dir) {
    FILE * f = fopen(getenv("LOAD_RECORD"), "w");
    fputs(dir, f);
    fclose(f);
}
"""


def _files(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def _lib_dir(tmp_path: Path, *names: str) -> Path:
    return _files(tmp_path / "site-packages" / "llama_cpp" / "lib", *names)


def test_a_dispatch_build_is_told_apart_from_a_single_cpu_build(tmp_path: Path) -> None:
    dispatch = _lib_dir(tmp_path, "libggml-cpu-haswell.so", "libggml-cpu-sapphirerapids.so", "libggml-cpu-x64.so",
                        "libggml.so.0", "libggml-base.so", "libllama.so")  # fmt: skip
    assert cpu_variants(dispatch) == ["haswell", "sapphirerapids", "x64"]
    single = tmp_path / "single"
    single.mkdir()
    for name in ("libggml-cpu.so", "libggml-cpu.so.0", "libggml-cpu.so.0.25.3", "libggml.so.0"):
        (single / name).write_bytes(b"")
    assert cpu_variants(single) == []
    assert cpu_variants(None) == []


def test_the_variants_are_found_where_the_wheel_installs_them(tmp_path: Path) -> None:
    """ggml's install rule puts them in bin/ of the prefix: site-packages/bin for a wheel."""
    lib = _lib_dir(tmp_path, "libggml.so.0", "libllama.so")
    assert variant_dir(lib) is None
    wheel_bin = _files(tmp_path / "site-packages" / "bin", "libggml-cpu-haswell.so", "libggml-cpu-zen4.so")
    assert variant_dir(lib) == wheel_bin
    _files(lib, "libggml-cpu-x64.so")  # a build that copied them beside libllama: that folder first
    assert variant_dir(lib) == lib
    assert variant_dir(None) is None


def test_a_single_cpu_build_is_left_alone(tmp_path: Path) -> None:
    lib = _lib_dir(tmp_path, "libggml-cpu.so", "libggml.so.0")  # libggml.so.0 is not even a library here
    assert load_cpu_variants(lib) is False


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler for the stand-in libggml")
def test_the_variants_are_loaded_from_the_packages_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _lib_dir(tmp_path)
    wheel_bin = _files(
        tmp_path / "site-packages" / "bin", "libggml-cpu-haswell.so", "libggml-cpu-skylakex.so"
    )
    source = tmp_path / "ggml.c"
    source.write_text("#include <stdlib.h>\n" + STAND_IN)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / "libggml.so.0"), str(source)], check=True)
    record = tmp_path / "asked"
    monkeypatch.setenv("LOAD_RECORD", str(record))
    assert load_cpu_variants(lib) is True
    assert record.read_text() == str(wheel_bin)


def test_the_installed_build_is_found_without_importing_it() -> None:
    lib = backend_dir()
    assert lib is not None and (lib / "libllama.so").exists()


def test_the_check_says_what_the_installed_build_is(capsys: pytest.CaptureFixture[str]) -> None:
    code = cpu_backends.main(["--installed"])
    out, err = capsys.readouterr()
    if variant_dir(backend_dir()):
        assert code == 0 and "run-time CPU dispatch" in out
    else:  # the AVX2 build of scripts/setup.sh --avx2
        assert code == 1 and "single-CPU build" in err


def test_the_model_server_process_starts_through_the_loader() -> None:
    """The embedded server runs ``zhiwen.tools.llama_serve``; its --help is llama_cpp.server's own."""
    out = subprocess.run(
        [sys.executable, "-m", "zhiwen.tools.llama_serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "--model_alias" in out.stdout and "--n_threads" in out.stdout
