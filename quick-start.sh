#!/usr/bin/env bash
# One command from a fresh clone to a trained model.
#
#   ./quick-start.sh          set up .venv/, then run the CPU demo
#   ./quick-start.sh --demo   the same, explicitly
#
# The demo builds a tiny Llama-architecture model, a tokenizer and a synthetic
# preference dataset locally (nothing is downloaded), trains DPO on one CPU in
# about a minute and prints where the metrics are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for arg in "$@"; do
  case $arg in
    --demo) ;;
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "quick-start.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

./setup.sh

demo=.demo
run=$demo/runs/tiny_dpo
echo "[quick-start] building the tiny model, tokenizer and data in $demo/assets"
.venv/bin/python -m fairseq2_preference.tiny "$demo/assets" >/dev/null
rm -rf "$run"
echo "[quick-start] training DPO on CPU (log: $run/logs/rank_0.log)"
FAIRSEQ2_DEVICE=cpu .venv/bin/fairseq2 lm preference_finetune "$run" \
  --config-file example_configurations/tiny_dpo_cpu.yaml --no-rich >"$demo/tiny_dpo.out" 2>&1 \
  || { tail -n 30 "$demo/tiny_dpo.out" >&2; exit 1; }

.venv/bin/python - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
train = [json.loads(l) for l in (run / "metrics/train.jsonl").read_text().splitlines()]
valid = [json.loads(l) for l in (run / "metrics/valid.jsonl").read_text().splitlines()]
print(f"[quick-start] loss {train[0]['Loss']:.3f} (step 1) -> {train[-1]['Loss']:.3f} (step {train[-1]['Step']})")
print(f"[quick-start] held-out reward accuracy {valid[-1]['Rewards/Accuracies']:.2f}")
PY
cat <<MSG
[quick-start] metrics:     $run/metrics/{train,valid}.jsonl
[quick-start] checkpoints: $run/checkpoints/
[quick-start] TensorBoard: .venv/bin/tensorboard --logdir $run/tb
MSG
