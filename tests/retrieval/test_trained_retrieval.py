"""Retrieval with a trained style encoder, end to end through the index (issue case (a))."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import SynthConfig, synthesize_song
from mixrep.datasets.registry import open_source
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.styles.chains import StemChain, StyleChain, apply_chain

SR = 22_050
# Two mixing styles: drums down / vocals up / reverb on "other", versus the opposite balance with
# "other" band-limited to 2 kHz.
STYLE_A = StyleChain((StemChain(gain_db=-8.0), StemChain(),
                      StemChain(reverb={"room_size": 0.8, "damping": 0.3, "wet_level": 0.5}), StemChain(gain_db=8.0)))
STYLE_B = StyleChain((StemChain(gain_db=8.0), StemChain(),
                      StemChain(bandwidth={"highpass_hz": 20.0, "lowpass_hz": 2000.0, "order": 4}),
                      StemChain(gain_db=-8.0)))


def write_stems(folder: Path, song: int, chain: StyleChain) -> Path:
    # Songs of another seed than the training corpus: never seen in training.
    stems = apply_chain(synthesize_song(song, SynthConfig(num_songs=10, song_seconds=4.0, seed=777, sample_rate=SR)).stems,
                        chain, SR)
    for name, audio in zip(STEMS, stems):
        write_audio(folder / f"{name}.wav", audio, SR)
    return folder


@pytest.mark.slow
def test_same_style_ranks_above_the_same_song_in_another_style(style_checkpoint, tmp_path):
    encoder = StyleEncoder.from_checkpoint(style_checkpoint, device="cpu")
    library = tmp_path / "library"
    for song in range(4):
        write_stems(library / f"song{song}_a", song, STYLE_A)
        write_stems(library / f"song{song}_b", song, STYLE_B)
    query = write_stems(tmp_path / "query", 9, STYLE_A)
    build_library_index(encoder, open_source("stems", library, sample_rate=SR, min_seconds=1.0), tmp_path / "index",
                        progress=False)
    with LibraryIndex.open(tmp_path / "index") as index:
        (result,) = index.search_files(encoder, [query], k=8, stems=True)
    ranked = [Path(hit.path).name for hit in result.hits]
    assert len(ranked) == 8
    for song in range(4):
        assert ranked.index(f"song{song}_a") < ranked.index(f"song{song}_b"), ranked


@pytest.mark.slow
def test_evaluate_command_scores_the_checkpoint_and_the_baselines(style_checkpoint, capsys):
    assert mixrep_main(["evaluate", "--checkpoint", str(style_checkpoint), "--domain", "synth", "--style-space",
                        "chains", "--songs", "4", "--styles", "4", "--json"]) == 0
    import json

    (domain,) = json.loads(capsys.readouterr().out)
    scores = domain["scores"]
    assert set(scores) == {"trained", "untrained", "mix_features", "stem_features", "stem_descriptor", "mfcc"}
    assert all(0.0 <= s["map"] <= 1.0 and s["queries"] == 16 for s in scores.values())
    assert scores["trained"]["map"] > scores["untrained"]["map"]
