#!/usr/bin/env bash
# Stage 2 on the embedded default: train the regression head (configs/regression.yaml) against the best style
# encoder `make demo` recorded in outputs/demo/best.json (training one first with scripts/train.sh when there is
# none), mix a held-out synthetic song's raw tracks in the style of another song with `mixrep mix` (--report: the
# guard's confidence and the comparison with balance matching alone; its settings file, the pedalboard render, REAPER
# and DAWproject projects and a listening page), score the head against the baselines with
# `mixrep evaluate-transfer`, and print the guard's table (benchmarks/transfer_guard.py: held-out songs of the
# numpy synth, the held-out soundfont and effects outside the training vocabulary). Everything lands in outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHON
if [ ! -f outputs/demo/best.json ]; then
  bash scripts/train.sh encoder
fi
bash scripts/train.sh head --config configs/regression.yaml "$@"
# the best head of the run just trained, as training recorded it
head=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_model_path"])' outputs/regression/best.json)
example=outputs/transfer_demo
"$PYTHON" - "$example" <<'PY'
# a held-out synthetic song's raw tracks, and another song mixed in a style of the mixing-style space
import json
import sys
from pathlib import Path

import numpy as np

from mixrep.audio.io import write_audio
from mixrep.styles.mix_style import MixStyleConfig, render_mix, sample_mix_style
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, synthesize_song
from mixrep.files import atomic_write_text

out, rate = Path(sys.argv[1]), 22050
config = SynthConfig(num_songs=96, song_seconds=12.0, sample_rate=rate)
names, stems = [n for n, _ in TRACKS], [s for _, s in TRACKS]
raw = synthesize_song(5, config).tracks          # songs 5 and 13 are in the test split of the 96 songs
for name, track in zip(names, raw):
    write_audio(out / "tracks" / f"{name}.wav", track, rate)
classes = {s: [n for n, c in zip(names, stems) if c == s] for s in STEMS if s in stems}
atomic_write_text(out / "tracks" / "groups.json", json.dumps(classes))  # {stem class: [track, ...]}
style = sample_mix_style(MixStyleConfig(), np.random.default_rng(7), names=names + list(STEMS))
reference = render_mix(synthesize_song(13, config).tracks, style, rate, names, stems)
for stem, audio in zip(STEMS, reference):
    write_audio(out / "reference" / f"{stem}.wav", audio, rate)
print(f"wrote {out}/tracks (raw tracks of synth song 5) and {out}/reference (synth song 13 in a mix style)")
PY
"$PYTHON" -m mixrep.cli mix --tracks "$example/tracks" --reference-stems "$example/reference" --head "$head" \
  --out "$example/mix.wav" --refine-steps 10 --report --export pedalboard,reaper,dawproject
"$PYTHON" -m mixrep.cli report mix --out "$example/mix.wav" --tracks "$example/tracks" \
  --reference-stems "$example/reference" --html "$example/mix.html"
"$PYTHON" -m mixrep.cli mix --tracks "$example/tracks" --reference-stems "$example/reference" --head "$head" \
  --out "$example/mix_sparse.wav" --sparse
echo
echo "style transfer vs baselines, held-out songs and styles ($head):"
"$PYTHON" -m mixrep.cli evaluate-transfer --head "$head" --items 4 --refine-steps 10 --fit-steps 100
echo
echo "the guarded mixrep mix against today's head, balance matching alone and the plain sum (docs/transfer.md):"
"$PYTHON" benchmarks/transfer_guard.py --heads "$head" --items 1 --seconds 9
