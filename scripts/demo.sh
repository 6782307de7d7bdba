#!/usr/bin/env bash
# The main job on the embedded default: train configs/demo.yaml (two GM soundfonts; the numpy synth without them), then
# score the best checkpoint per domain (numpy synth; the soundfont held out from training) against the
# baselines on the same items (untrained encoder, mix features, per-stem features, per-stem descriptor, MFCC
# mean/std), and its settings recovery (the settings decoder against probes, per settings group).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHON
bash scripts/train.sh "$@"
# the best checkpoint of the run just trained (or resumed), as training recorded it
checkpoint=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_model_path"])' outputs/demo/best.json)
echo
echo "cross-domain style retrieval, held-out songs x mixing styles ($checkpoint):"
"$PYTHON" -m mixrep.cli evaluate --checkpoint "$checkpoint" --settings
