#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# The replica tests start a real PostgreSQL (initdb/pg_ctl); Debian's server package where it is missing.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing PostgreSQL (Debian package) for the replica tests" >&2
    apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null)
  else
    echo "== PostgreSQL server binaries not found: the replica tests will be skipped" >&2
  fi
fi
# The web page's tests drive a real headless Chromium through Playwright: Debian's package where it is missing.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Chromium (Debian package) for the web page tests" >&2
    web_packages="chromium fonts-wqy-microhei fonts-noto-color-emoji"  # fonts: Chinese and emoji in screenshots
    apt-get install -y -q $web_packages >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $web_packages >/dev/null)
  else
    echo "== chromium not found: the web page tests will be skipped" >&2
  fi
fi
# The deployment tests run a real Prometheus (with promtool) and nginx: Debian's packages where they are missing.
deploy_tools=present
command -v promtool >/dev/null || deploy_tools=missing
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || deploy_tools=missing
if [ "$deploy_tools" = missing ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Prometheus and nginx (Debian packages) for the deployment tests" >&2
    apt-get install -y -q --no-install-recommends prometheus nginx >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus nginx >/dev/null)
  else
    echo "== prometheus/promtool or nginx not found: the deployment tests that need them will be skipped" >&2
  fi
fi
export ZHIWEN_HOME="${ZHIWEN_HOME:-$(mktemp -d)}"   # never touch the user's data
echo "== ruff" >&2 && .venv/bin/ruff check zhiwen tests benchmarks && .venv/bin/ruff format --check zhiwen tests benchmarks docs
echo "== mypy --strict" >&2 && .venv/bin/mypy --strict zhiwen
echo "== pytest" >&2 && .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== eval smoke (fails when a metric drops below its floor)" >&2
.venv/bin/zhiwen eval smoke --out "$ZHIWEN_HOME/eval-smoke"
