#!/usr/bin/env bash
# One command from a fresh clone to a trained model.
#
#   ./quick-start.sh             with GPUs: OpenAssistant2 + DPO on Llama 3.1 8B Instruct, all GPUs;
#                                without:   the CPU demo below
#   ./quick-start.sh --demo      the CPU demo, even on a GPU machine
#   ./quick-start.sh --lora      DPO with LoRA adapters on a frozen base (GPU: one GPU is
#                                enough for Llama 3.1 8B; demo: the DPO stage trains adapters)
#   ./quick-start.sh --online    the CPU demo with online, iterative DPO instead of DPO on
#                                given pairs: 3 rounds of sample, judge, pair, train
#   ./quick-start.sh --dry-run   print the commands instead of running them
#
# The GPU run needs the Hugging Face hub: OpenAssistant/oasst2, and the gated Llama
# 3.1 weights (accept the licence on huggingface.co/meta-llama/Llama-3.1-8B-Instruct,
# then `huggingface-cli login`), or weights on disk: MODEL_PATH=/models/Llama-3.1-8B-Instruct
# (a Hugging Face or Meta download; README, "Getting Llama weights").
# The CPU demo needs no network: it generates a preference task (2,688 pairs; the
# held-out pairs ask about colour-animal combinations training never shows) and a
# tiny Llama-architecture model, runs the recipe's two stages — SFT, then DPO from
# the SFT checkpoint — in a few minutes, and prints training and held-out metrics
# side by side. It fails unless held-out reward accuracy ends above 0.8 (with
# --online: unless the held-out prompts' judged score rose by 0.2 over the rounds).
#
# Environment: DATA_DIR (data/oasst2), CARD_DIR (~/.config/fairseq2/assets),
# OUTPUT_DIR (runs/quick_start_dpo), MODEL_PATH (none: the hub), DEMO_DIR (.demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

demo=0 dry_run=0 lora=0 online=0
for arg in "$@"; do
  case $arg in
    --demo) demo=1 ;;
    --lora) lora=1 ;;
    --online) demo=1 online=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,25s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "quick-start.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $online == 1 && $lora == 1 ]]; then
  echo "quick-start.sh: --online trains full weights here; for LoRA rounds add lora to the" \
    "iterate config's train.overrides (OVERVIEW.md, 'Online, iterative DPO')" >&2
  exit 2
fi

say() { echo "[quick-start] $*"; }
run() {
  if [[ $dry_run == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}
stage() {  # stage NAME COMMAND...: a demo stage, its output kept in $demo_dir/NAME.log
  local name=$1
  shift
  if [[ $dry_run == 1 ]]; then run "$@"; return; fi
  "$@" >"$demo_dir/$name.log" 2>&1 || { tail -n 30 "$demo_dir/$name.log" >&2; exit 1; }
}

num_gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  num_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
fi

run ./setup.sh

if [[ $demo == 0 && $num_gpus -gt 0 ]]; then
  data_dir=${DATA_DIR:-data/oasst2}
  card_dir=${CARD_DIR:-$HOME/.config/fairseq2/assets}
  output_dir=${OUTPUT_DIR:-runs/quick_start_dpo}
  config=example_configurations/llama3_1_8b_instruct_dpo.yaml
  [[ $lora == 1 ]] && config=example_configurations/dpo_llama3_1_8b_lora_1gpu.yaml
  say "$num_gpus GPU(s): preparing OpenAssistant2, then DPO on Llama 3.1 8B Instruct ($config)."
  run .venv/bin/python datasets/openassistant2_llama3_data_prep.py \
    --data_dir "$data_dir" --card_dir "$card_dir"
  run env NUM_GPUS="$num_gpus" CONFIG="$config" \
    OUTPUT_DIR="$output_dir" example_training_scripts/train_torchrun.sh \
    --config "common.assets.extra_paths=[$card_dir]" ${MODEL_PATH:+"model.path=$MODEL_PATH"}
  say "metrics: $output_dir/metrics/{train,valid}.jsonl; TensorBoard: .venv/bin/tensorboard --logdir $output_dir/tb"
  exit 0
fi

[[ $demo == 1 ]] || say "No GPU found: running the CPU demo (./quick-start.sh --demo does this anywhere)."
demo_dir=${DEMO_DIR:-.demo}
cards="[$demo_dir/assets/cards]"
export FAIRSEQ2_DEVICE=cpu

say "1/3 generating a preference task and a tiny Llama-architecture model ($demo_dir/assets)"
run .venv/bin/python -m fairseq2_preference.tiny "$demo_dir/assets" --rejected-per-prompt 7

say "2/3 SFT on the instruction data ($demo_dir/runs/sft)"
run rm -rf "$demo_dir/runs"
stage sft .venv/bin/fairseq2 lm instruction_finetune "$demo_dir/runs/sft" --no-rich \
  --config-file example_configurations/tiny_sft_cpu.yaml --config "common.assets.extra_paths=$cards"

if [[ $online == 1 ]]; then
  say "3/3 online DPO from the SFT checkpoint, 3 rounds ($demo_dir/runs/online)"
  stage online .venv/bin/fairseq2 lm preference_iterate "$demo_dir/runs/online" \
    --config-file example_configurations/tiny_online_dpo_cpu.yaml --config \
    "policy.checkpoint_dir=$demo_dir/runs/sft/checkpoints" \
    "prompts.path=$demo_dir/assets/data/prompts" "held_out.path=$demo_dir/assets/data/prompts" \
    "eval_pairs.path=$demo_dir/assets/data/preference" \
    "overrides=[\"common.assets.extra_paths=$cards\", tokenizer.name=tiny_llama]"
else
  lora_args=()
  [[ $lora == 1 ]] && lora_args=("lora={rank: 16, alpha: 32}" optimizer.config.lr=0.01)
  say "3/3 DPO from the SFT checkpoint ($demo_dir/runs/dpo)${lora_args:+, LoRA adapters only}"
  stage dpo .venv/bin/fairseq2 lm preference_finetune "$demo_dir/runs/dpo" --no-rich \
    --config-file example_configurations/tiny_dpo_cpu.yaml --config "common.assets.extra_paths=$cards" \
    model.name=last_checkpoint reference_model.name=last_checkpoint "${lora_args[@]}" \
    "common.assets.prev_checkpoint_dir=$demo_dir/runs/sft/checkpoints"
fi

[[ $dry_run == 1 ]] && exit 0
status=0
.venv/bin/python -m fairseq2_preference.tiny.summary "$demo_dir/runs" || status=$?
if [[ $online == 1 ]]; then
  cat <<MSG
[quick-start] rounds:      $demo_dir/runs/online/rounds.jsonl (samples, scores, pairs in round_*/)
[quick-start] checkpoints: $demo_dir/runs/online/round_*/train/checkpoints/
MSG
else
  cat <<MSG
[quick-start] metrics:     $demo_dir/runs/{sft,dpo}/metrics/{train,valid}.jsonl
[quick-start] checkpoints: $demo_dir/runs/{sft,dpo}/checkpoints/
[quick-start] TensorBoard: .venv/bin/tensorboard --logdir $demo_dir/runs
[quick-start] a Hugging Face copy: .venv/bin/fairseq2 lm export_hf $demo_dir/runs/dpo $demo_dir/hf
MSG
fi
exit $status
