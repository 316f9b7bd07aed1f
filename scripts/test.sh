#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export ZHIWEN_HOME="${ZHIWEN_HOME:-$(mktemp -d)}"   # never touch the user's data
echo "== ruff" >&2 && .venv/bin/ruff check zhiwen tests benchmarks && .venv/bin/ruff format --check zhiwen tests benchmarks docs
echo "== mypy --strict" >&2 && .venv/bin/mypy --strict zhiwen
echo "== pytest" >&2 && .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== eval smoke (fails when a metric drops below its floor)" >&2
.venv/bin/zhiwen eval smoke --out "$ZHIWEN_HOME/eval-smoke"
