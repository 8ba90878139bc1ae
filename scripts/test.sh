#!/usr/bin/env bash
# Creates .venv from nothing but Python, installs symgrad with its test extras, runs the tests and the
# docstring examples of symgrad/ (pyproject.toml: testpaths, --doctest-modules), on every core
# (pytest-xdist; PYTEST_WORKERS=0 runs them in this one process).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh test
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" "$@"
