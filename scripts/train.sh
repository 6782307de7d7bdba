#!/usr/bin/env bash
# Train the style encoder. With no arguments: the built-in synthetic corpus (configs/demo.yaml).
# Extra arguments go to LightningCLI, e.g.
#   bash scripts/train.sh --config configs/fma.yaml --data.root /data/fma
#   bash scripts/train.sh --trainer.devices 4 --trainer.num_nodes 2     # DDP
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if [ "$#" -eq 0 ]; then
  set -- --config configs/demo.yaml
fi
exec "$PYTHON" -m mixrep.training.cli fit "$@"
