#!/usr/bin/env bash
# Set up fairseq2-preference in .venv/ at the repository root.
#
#   ./setup.sh                 the package and its run-time dependencies
#   ./setup.sh --extras test   ... plus what the test suite needs (comma-separate several)
#
# It installs the system library fairseq2 needs (libsndfile1) with apt when it is
# missing and you are root, or stops saying what to install. It is idempotent:
# when nothing changed since the last run it returns in seconds.
# Environment: PYTHON=/path/to/python3.X picks the interpreter (3.10 to 3.12).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

extras=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --extras) extras=${2:?--extras needs a value}; shift 2 ;;
    --extras=*) extras=${1#*=}; shift ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*"; }

# 1. libsndfile: libfairseq2n.so links libsndfile.so.1.
if ! ldconfig -p 2>/dev/null | grep -q 'libsndfile\.so\.1'; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing libsndfile1 with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q libsndfile1 >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q libsndfile1 >/dev/null; }
  else
    cat >&2 <<'MSG'
[setup] fairseq2 needs the system library libsndfile, which is not installed.
        Install it, then run this script again:
          Debian/Ubuntu:  sudo apt-get install libsndfile1
          Fedora/RHEL:    sudo dnf install libsndfile
          conda:          conda install -c conda-forge libsndfile
MSG
    exit 1
  fi
fi

# 2. A Python that fairseq2 0.8.1 has wheels for.
find_python() {
  local candidates=("${PYTHON:-}" python3.11 python3.12 python3.10 python3)
  for py in "${candidates[@]}"; do
    [[ -n $py ]] && command -v "$py" >/dev/null || continue
    if "$py" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
      echo "$py"; return 0
    fi
  done
  return 1
}

if [[ ! -x .venv/bin/python ]]; then
  py=$(find_python) || { echo "[setup] Python 3.10, 3.11 or 3.12 is required (set PYTHON=...)." >&2; exit 1; }
  say "creating .venv with $($py --version)"
  "$py" -m venv .venv
fi

# 3. The package, editable, with the requested extras; stamps make re-runs cheap.
fingerprint=$(cat pyproject.toml | sha256sum | cut -c1-16)
needed=()
for part in base ${extras//,/ }; do
  [[ -f .venv/.setup-$fingerprint-$part ]] || needed+=("$part")
done
if [[ ${#needed[@]} -eq 0 ]] && .venv/bin/python -c 'import fairseq2_preference' 2>/dev/null; then
  say "environment up to date (.venv)"
  exit 0
fi

spec="."
[[ -n $extras ]] && spec=".[${extras}]"
say "installing fairseq2-preference ($spec) into .venv; the first time takes a few minutes"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "$spec"
.venv/bin/python -c 'import fairseq2_preference.recipe' >/dev/null
find .venv -maxdepth 1 -name '.setup-*' ! -name ".setup-$fingerprint-*" -delete
for part in base ${extras//,/ }; do touch ".venv/.setup-$fingerprint-$part"; done
say "done: activate with 'source .venv/bin/activate'"
