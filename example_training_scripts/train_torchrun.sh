#!/usr/bin/env bash
# Train on one node with all its GPUs: torchrun starts one process per GPU and
# fairseq2 builds its gangs (DDP or FSDP, per the config) from torchrun's env.
#
#   example_training_scripts/train_torchrun.sh
#   CONFIG=example_configurations/llama3_1_8b_instruct_simpo.yaml OUTPUT_DIR=runs/simpo example_training_scripts/train_torchrun.sh
#   DRY_RUN=1 example_training_scripts/train_torchrun.sh     # print the command only
#   example_training_scripts/train_torchrun.sh --config regime.num_steps=100   # extra args go to fairseq2
set -euo pipefail

# ---- knobs (environment variables override these defaults) -------------------
COMMAND=${COMMAND:-preference_finetune}        # or instruction_finetune
CONFIG=${CONFIG:-example_configurations/llama3_1_8b_instruct_dpo.yaml}
OUTPUT_DIR=${OUTPUT_DIR:-runs/$(basename "${CONFIG%.yaml}")}
NUM_GPUS=${NUM_GPUS:-}                          # default: every GPU this process can see
VENV=${VENV:-.venv}
DRY_RUN=${DRY_RUN:-0}
# -------------------------------------------------------------------------------

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z $NUM_GPUS ]]; then
  if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    IFS=, read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
    NUM_GPUS=${#visible[@]}
  elif command -v nvidia-smi >/dev/null 2>&1; then
    NUM_GPUS=$(nvidia-smi -L | grep -c '^GPU ' || true)
  fi
fi
if [[ -z $NUM_GPUS || $NUM_GPUS -lt 1 ]]; then
  echo "train_torchrun.sh: no GPU found (set NUM_GPUS to override); for a CPU run use quick-start.sh --demo." >&2
  exit 2
fi

# `python -m torch.distributed.run` from the venv, so every rank imports this venv's packages.
command=("$VENV/bin/python" -m torch.distributed.run --standalone --nproc-per-node "$NUM_GPUS"
         --no-python "$VENV/bin/fairseq2" lm "$COMMAND" "$OUTPUT_DIR" --config-file "$CONFIG" "$@")

if [[ $DRY_RUN == 1 ]]; then
  printf '%q ' "${command[@]}"; echo
  exit 0
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} exec "${command[@]}"
