#!/usr/bin/env bash
# TRL's own environment for benchmarks/vs_trl.py: a venv that reuses this project's
# torch, transformers and datasets (no second torch download) and adds TRL 1.16 and
# accelerate. Usage: benchmarks/trl_env.sh [ENV_DIR]   (default /tmp/trl-env)
# TRL_WHEEL=/path/to/trl-1.16.0-py3-none-any.whl installs TRL from a local wheel.
set -euo pipefail
env_dir=${1:-/tmp/trl-env}
project_python="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
version='import sys; print("python%d.%d" % sys.version_info[:2])'

"$("$project_python" -c "$version")" -m venv "$env_dir"
"$project_python" -c "$purelib" >"$("$env_dir/bin/python" -c "$purelib")/project_packages.pth"
"$env_dir/bin/pip" install --quiet --no-deps "${TRL_WHEEL:-trl==1.16.0}" accelerate
"$env_dir/bin/python" -c 'import accelerate, torch, transformers, trl
print("trl", trl.__version__, "accelerate", accelerate.__version__, "torch", torch.__version__,
      "transformers", transformers.__version__)'
