#!/usr/bin/env bash
# The main job on the embedded default: train on the synthetic corpus, then score the best
# checkpoint against the two baselines (untrained encoder, handcrafted mix features).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHON
bash scripts/train.sh "$@"
checkpoint=$(ls -t outputs/demo/tensorboard/version_*/checkpoints/best-*.ckpt | head -n 1)
echo
echo "style retrieval on held-out songs x mixing styles ($checkpoint):"
"$PYTHON" -m mixrep.cli evaluate --checkpoint "$checkpoint"
