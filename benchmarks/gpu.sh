#!/usr/bin/env bash
# The GPU check in one command: set up, run the CUDA tests, then this project's DPO
# step against TRL 1.16's on a 1.50B Llama, and write one table.
#
#   benchmarks/gpu.sh [RESULTS_DIR]     (default: $OUT when set, else ./gpu-results)
#
# Set-up, the first that applies:
#   * .gpu/ in the project root (written by ../shared/gpu/prepare.sh and carried to a
#     torch-2.11 host with no package index): sourced, it puts fairseq2, its native
#     libraries and TRL 1.16 into /tmp/site; this checkout's src/ goes first on the path;
#   * a python3 (or $PYTHON) that imports fairseq2 and trl: used as it is, with src/;
#   * otherwise ./setup.sh --extras test and benchmarks/trl_env.sh (needs a package index).
# Then, each under its own time limit (seconds; override by environment), so that one
# failure or hang loses nothing else:
#   CUDA tests (CUDA_TESTS_TIMEOUT, 120), the random 1.50B checkpoint (PREPARE_TIMEOUT, 90),
#   and the rows ROW_4x1024 (90), ROW_8x1024 (90), ROW_8x2048_ac (120), ROW_chat (120),
#   ROW_cached_reference (60) of benchmarks/README.md ("GPU"); ROWS="4x1024 chat" runs some,
#   SHAPE=tiny a small model (to try the script on a CPU).
# Writes RESULTS_DIR/gpu.md, gpu.json and logs/. Budget: 8 minutes on one H100/H200.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
results=${1:-${OUT:-gpu-results}}
mkdir -p "$results/logs"
log() { echo "[gpu] $(date +%T) $*" | tee -a "$results/logs/gpu.log" >&2; }
started=$SECONDS

# -- set-up ----------------------------------------------------------------------------
if [[ -f .gpu/setup_site.sh ]]; then
  log "set-up: .gpu/ kit into /tmp/site"
  # shellcheck disable=SC1091
  . .gpu/setup_site.sh
  py=python3
  trl_python=python3
elif ${PYTHON:-python3} -c 'import fairseq2' 2>/dev/null; then
  py=${PYTHON:-python3}
  trl_python=${TRL_PYTHON:-$py}
else
  log "set-up: ./setup.sh and benchmarks/trl_env.sh (package index needed)"
  ./setup.sh --extras test >>"$results/logs/setup.log" 2>&1 || { log "setup.sh failed"; exit 1; }
  benchmarks/trl_env.sh /tmp/trl-env >>"$results/logs/setup.log" 2>&1 || log "no TRL env"
  py=.venv/bin/python
  trl_python=/tmp/trl-env/bin/python
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$py" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' \
  >"$results/logs/gpu_name.txt" 2>&1
nvidia-smi >"$results/logs/nvidia-smi.txt" 2>&1
log "GPU: $(cat "$results/logs/gpu_name.txt"); python: $($py -c 'import torch; print(torch.__version__)')"
sides=ours,trl
"$trl_python" -c 'import trl' 2>/dev/null || { sides=ours; log "no TRL for $trl_python: ours only"; }
log "set-up took $((SECONDS - started)) s"

# -- CUDA tests ------------------------------------------------------------------------
log "CUDA tests"
timeout -k 10 "${CUDA_TESTS_TIMEOUT:-120}" "$py" -m pytest -q -m cuda tests/test_cuda.py \
  -p no:cacheprovider -o addopts="" -rA >"$results/logs/cuda_tests.txt" 2>&1
echo "exit status $?" >>"$results/logs/cuda_tests.txt"
log "CUDA tests: $(grep -E ' in [0-9.]+s' "$results/logs/cuda_tests.txt" | tail -1)"

# -- the step benchmark ----------------------------------------------------------------
work=${WORK:-/tmp/vs-trl-work}  # the checkpoint, shared by the rows
shape=(--shape "${SHAPE:-h100}" --work "$work" --warmup 2 --steps 6 --trl_python "$trl_python")
log "random 1.50B checkpoint"
timeout -k 10 "${PREPARE_TIMEOUT:-90}" "$py" benchmarks/vs_trl.py "${shape[@]}" --sides none \
  >"$results/logs/prepare.txt" 2>&1 || log "checkpoint not written: see logs/prepare.txt"

declare -A row_args=(
  [4x1024]="--data fixed --seq_len 1024 --batch_pairs 4 --mode static --no_logits_check"
  [8x1024]="--data fixed --seq_len 1024 --batch_pairs 8 --mode static --no_logits_check"
  [8x2048_ac]="--data fixed --seq_len 2048 --batch_pairs 8 --mode static --activation_checkpointing --no_logits_check"
  [chat]="--data chat --seq_len 1024 --mode static,own --max_num_tokens 16384"
  [cached_reference]="--data chat --seq_len 1024 --mode own --max_num_tokens 16384 --reference cached --sides ours --no_logits_check"
)
declare -A row_timeout=([4x1024]=90 [8x1024]=90 [8x2048_ac]=120 [chat]=120 [cached_reference]=60)
for row in ${ROWS:-4x1024 8x1024 8x2048_ac chat cached_reference}; do
  limit_var="ROW_$row"
  limit=${!limit_var:-${row_timeout[$row]}}
  log "row $row (limit ${limit} s)"
  # shellcheck disable=SC2086
  timeout -k 10 "$limit" "$py" benchmarks/vs_trl.py "${shape[@]}" --sides "$sides" ${row_args[$row]} \
    >"$results/logs/row_$row.jsonl" 2>"$results/logs/row_$row.err"
  status=$?
  [[ $status -eq 0 ]] || log "row $row ended with status $status (124: over its limit)"
done

"$py" benchmarks/gpu_table.py "$results" || log "no table: see above"
log "done in $((SECONDS - started)) s: $results/gpu.md"
