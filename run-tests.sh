#!/usr/bin/env bash
# Set up (with the test and eval extras) and run the project's checks: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k dpo -x (-n 0: one process)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./setup.sh --extras test,eval
.venv/bin/ruff check src tests loss_functions benchmarks
.venv/bin/ruff format --check src tests loss_functions benchmarks
.venv/bin/mypy
# Two workers; a test module's tests stay on one worker (module-scoped fixtures).
.venv/bin/python -m pytest -n 2 --dist loadscope "$@"
