#!/usr/bin/env bash
# Set up (with the test and eval extras) and run the project's checks: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k dpo -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./setup.sh --extras test,eval
.venv/bin/ruff check src tests loss_functions benchmarks
.venv/bin/ruff format --check src tests loss_functions benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
