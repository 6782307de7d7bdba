#!/usr/bin/env bash
# Train the style encoder. Without --config: configs/demo.yaml (two GM soundfonts, the numpy synth without them; CPU-sized), and
# any arguments given are added to it (they override its values). With --config: that config instead.
#   bash scripts/train.sh                                                   # the demo
#   bash scripts/train.sh --trainer.max_epochs 2                            # the demo, 2 epochs
#   bash scripts/train.sh --ckpt_path outputs/demo/.../last.ckpt            # resume the demo
#   bash scripts/train.sh --config configs/fma.yaml --data.root /data/fma
#   bash scripts/train.sh --trainer.devices 4 --trainer.num_nodes 2         # DDP
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
has_config=false
for arg in "$@"; do
  case "$arg" in
    --config|--config=*|-c) has_config=true ;;
  esac
done
if [ "$has_config" = false ]; then
  set -- --config configs/demo.yaml "$@"
fi
exec "$PYTHON" -m mixrep.training.cli fit "$@"
