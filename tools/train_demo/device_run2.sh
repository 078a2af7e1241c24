#!/bin/bash
# Second GPU run: the target is already trained (models/demo-target). Distil two small drafts,
# keep the one that agrees best with the target among those the target beats by >= 18% in
# held-out perplexity (scripture and overall), evaluate, write reference outputs, and check
# the folders with transformers. Environment: OUT, DEV, PY, STEPS, WALL.
set -o pipefail
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
cd "$(dirname "$0")"
M=${M:-/tmp/demo_models2}
PY=${PY:-python3}
rm -rf "$M" && mkdir -p "$M"
T0=$(date +%s)
for v in "d128 128 4 2 384" "d96 96 3 1 256"; do
  set -- $v
  mkdir -p "$M/$1" && cp -r ../../models/prompts ../../models/demo-target "$M/$1/"
  A="--out $M/$1 --work work --device ${DEV:-cuda} --d-hidden $2 --d-heads $3 --d-kv $4 --d-inter $5 --draft-steps ${STEPS:-700} --draft-wall ${WALL:-40} --eval-every 100 $EXTRA"
  $PY train.py --stages draft,heldout --eval-prompts 0 $A || exit 1
  cp work/log_draft.json "$M/$1/log_draft.json"
  cp "$M/$1/demo-draft/model.safetensors" "$OUT/draft_$1.safetensors"; cp "$M/$1/metrics.json" "$OUT/metrics_$1.json"
  echo "$1 done after $(( $(date +%s) - T0 ))s"
done
BEST=$($PY select_draft.py "$M" d128 d96)
echo "chosen draft: $BEST"
cp work/log_draft.json work/log_draft.last.json; cp "$M/$BEST/log_draft.json" work/log_draft.json
$PY train.py --stages evaluate --out "$M/$BEST" --work work --device ${DEV:-cuda} $EXTRA
echo "evaluate done after $(( $(date +%s) - T0 ))s"
tar czf "$OUT/results.tgz" -C "$M/$BEST" --exclude='*.safetensors' .
$PY hf_check.py "$M/$BEST" "$OUT/hf_check.json"
echo "hf_check done after $(( $(date +%s) - T0 ))s"
