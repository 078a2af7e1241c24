#!/bin/bash
# The GPU run: train target and draft from the prepared work/ folder (carried), evaluate,
# check with transformers, and leave the results in $OUT. Partial results are copied to $OUT
# as soon as each stage ends. Environment: OUT, DEV (cuda|cpu), TRAIN_ARGS, PY.
set -o pipefail
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
cd "$(dirname "$0")"
M=${M:-/tmp/demo_models}
PY=${PY:-python3}
rm -rf "$M" && mkdir -p "$M" && cp -r ../../models/prompts "$M/"
ARGS="--out $M --work work --device ${DEV:-cuda} $TRAIN_ARGS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
T0=$(date +%s)
$PY train.py --stages target $ARGS || exit 1
cp "$M/demo-target/model.safetensors" "$OUT/target.safetensors"; cp work/log_target.json "$OUT/"
echo "target done after $(( $(date +%s) - T0 ))s"
$PY train.py --stages draft $ARGS || exit 1
cp "$M/demo-draft/model.safetensors" "$OUT/draft.safetensors"; cp work/log_draft.json "$OUT/"
echo "draft done after $(( $(date +%s) - T0 ))s"
$PY train.py --stages evaluate $ARGS
echo "evaluate done after $(( $(date +%s) - T0 ))s"
$PY hf_check.py "$M" "$M/hf_check.json"
echo "hf_check done after $(( $(date +%s) - T0 ))s"
tar czf "$OUT/results.tgz" -C "$M" --exclude='*.safetensors' .
ls -la "$OUT"
