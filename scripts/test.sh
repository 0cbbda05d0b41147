#!/usr/bin/env bash
# The one test entry point (README and CI both call it):
#   creates .venv if needed, installs upbitpipe with dev extras, runs ruff, mypy and pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k config`.
# Pinned service artifacts (Kafka jars, S3 server, Flink) are fetched by upbitpipe's own
# infra code into the user cache dir on first use and reused after that.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check .
echo "== ruff format"; ruff format --check --quiet .
echo "== mypy"; mypy
echo "== pytest"
set +e
pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
