#!/usr/bin/env bash
# Train with `mixrep train encoder|head` (LightningCLI `fit`). The first argument may name the target (encoder,
# head); without it, a config whose top-level `task` is `head` (configs/regression.yaml) trains the head, any other
# the style encoder (the last --config with a `task` decides). Without --config: configs/demo.yaml (two GM
# soundfonts, the numpy synth without them; CPU-sized), and any arguments given are added to it (they override its
# values). With --config: that config instead.
#   bash scripts/train.sh                                                   # the demo encoder
#   bash scripts/train.sh --trainer.max_epochs 2                            # the demo, 2 epochs
#   bash scripts/train.sh --ckpt_path outputs/demo/.../last.ckpt            # resume the demo
#   bash scripts/train.sh --config configs/fma.yaml --data.root /data/fma
#   bash scripts/train.sh --trainer.devices 4 --trainer.num_nodes 2         # DDP
#   bash scripts/train.sh --config configs/regression.yaml                  # the head, against the demo's best encoder
#   bash scripts/train.sh head --config configs/regression.yaml --model.encoder_checkpoint PATH
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
target=""
case "${1:-}" in
  encoder|head) target="$1"; shift ;;
esac
# the target a config names in its top-level `task` key (the last config that has one decides)
config_target() {
  [ -f "$1" ] || return 0
  sed -nE 's/^task:[[:space:]]*(head|regression|encoder|style)([[:space:]#].*)?$/\1/p' "$1" | tail -n 1
}
has_config=false
named=""
previous=""
for arg in "$@"; do
  config=""
  case "$previous" in --config|-c) config="$arg" ;; esac
  case "$arg" in --config=*) config="${arg#--config=}" ;; esac
  if [ -n "$config" ]; then
    has_config=true
    task=$(config_target "$config")
    [ -n "$task" ] && named="$task"
  fi
  previous="$arg"
done
if [ "$has_config" = false ]; then
  set -- --config configs/demo.yaml "$@"
fi
if [ -z "$target" ]; then
  case "$named" in head|regression) target=head ;; *) target=encoder ;; esac
fi
exec "$PYTHON" -m mixrep.cli train "$target" fit "$@"
