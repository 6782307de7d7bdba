"""Cross-domain evaluation on tiny corpora: synth, a held-out soundfont (tiny SF2 fixture), a user dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.evaluation import encoder as evaluate_module
from mixrep.evaluation.encoder import (
    BASELINES,
    default_domains,
    evaluate_checkpoint,
    format_domain_scores,
    held_out_soundfont,
)
from mixrep.frontend import feature_names
from mixrep.retrieval.baselines import feature_baselines, mfcc_statistics, stem_feature_columns
from mixrep.retrieval.metrics import standardize
from tests.sf2_fixture import write_sf2

MODELS = {"trained", *BASELINES}


@pytest.fixture(scope="module")
def soundfonts(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("soundfonts")
    return [write_sf2(folder / f"{name}.sf2") for name in ("FluidR3_GM", "MuseScore_General_Full", "TimGM6mb")]


def write_track_dataset(root: Path, sample_rate: int, songs: int = 3, seconds: float = 4.0) -> Path:
    """``<song>/{Kick,Bass DI,Lead Vox}.wav``: a user's multitrack folder (classed by track names)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for s in range(songs):
        kick = np.sin(2 * np.pi * 60 * t) * (np.sin(2 * np.pi * 2 * t) > 0.9)
        bass = 0.3 * np.sin(2 * np.pi * (55 + 10 * s) * t)
        vox = 0.2 * np.sin(2 * np.pi * (300 + 40 * s) * t) + 0.01 * rng.standard_normal(len(t))
        for name, audio in (("Kick", kick), ("Bass DI", bass), ("Lead Vox", vox)):
            write_audio(root / f"song{s}" / f"{name}.wav", np.stack([audio, audio]).astype(np.float32), sample_rate)
    return root


def test_held_out_soundfont_is_one_the_checkpoint_did_not_train_on(monkeypatch, soundfonts):
    monkeypatch.setattr(evaluate_module, "installed_soundfonts", lambda: soundfonts)
    monkeypatch.setattr("mixrep.corpora.rendered.installed_soundfonts", lambda: soundfonts)
    fluid, muse, tim = soundfonts
    trained_on = lambda *names: {"datamodule_hyper_parameters": {"source": ["synth", "soundfont"],  # noqa: E731
                                                                 "soundfonts": list(names)}}
    assert held_out_soundfont(trained_on("FluidR3_GM", "TimGM6mb")) == muse.resolve()
    assert held_out_soundfont(trained_on("MuseScore_General", str(tim))) == fluid.resolve()
    synth_only = {"datamodule_hyper_parameters": {"source": "synth"}}
    assert held_out_soundfont(synth_only) == muse.resolve()  # the preferred one when nothing was trained on
    everything = trained_on("FluidR3_GM", "MuseScore_General", "TimGM6mb")
    assert held_out_soundfont(everything) is None and default_domains(everything) == ["synth"]
    assert default_domains(trained_on("FluidR3_GM"))[1] == f"soundfont:{muse.resolve()}"


def test_cross_domain_evaluation_scores_every_domain_on_the_same_items(tiny_checkpoint, soundfonts, tmp_path):
    pytest.importorskip("fluidsynth", reason="pyfluidsynth / libfluidsynth3 not installed")
    rate = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["mixrep"]["frontend"]["sample_rate"]
    dataset = write_track_dataset(tmp_path / "mine", rate)
    domains = ["synth", f"soundfont:{soundfonts[1]}", f"tracks:{dataset}", str(dataset)]
    results = evaluate_checkpoint(tiny_checkpoint, domains=domains, num_songs=3, num_styles=2,
                                  corpus_dir=tmp_path / "corpora")
    assert [r.domain for r in results] == domains
    for result in results:
        assert (result.songs, result.styles) == (3, 2) and set(result.scores) == MODELS
        assert all(s.queries == 6 and 0.0 <= s.map <= 1.0 for s in result.scores.values())
        assert result.best_baseline in BASELINES
    held_out = results[1]
    assert "MuseScore_General (held out" in held_out.description
    assert list((tmp_path / "corpora").iterdir())[0].name.startswith("MuseScore_General-seed7919-3x12s")
    # A bare path is read as the layout it has: the same items, the same scores.
    assert results[3].scores == results[2].scores and results[2].description.startswith("tracks dataset")
    table = format_domain_scores(results)
    assert table.count("trained - best baseline") == 4 and "MuseScore_General" in table
    # Evaluation is deterministic: the same items and scores again.
    again = evaluate_checkpoint(tiny_checkpoint, domains=["synth"], num_songs=3, num_styles=2)
    assert again[0].scores == results[0].scores


def test_evaluate_command_prints_one_table_and_json(tiny_checkpoint, capsys):
    assert mixrep_main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--domain", "synth", "--songs", "3",
                        "--styles", "2", "--style-space", "chains"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["domain", "songs", "x"] and "synth (numpy, seed 7919)" in table
    assert mixrep_main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--domain", "synth", "--songs", "3",
                        "--styles", "2", "--json"]) == 0
    (domain,) = json.loads(capsys.readouterr().out)
    assert set(domain["scores"]) == MODELS and domain["songs"] == 3 and domain["styles"] == 2


def test_feature_baselines_are_the_z_scored_features_and_their_per_stem_part():
    names = feature_names()
    columns = stem_feature_columns(names)
    assert len(columns) == 100 and all(not names[i].startswith("mix.") for i in columns)
    features = np.random.default_rng(0).standard_normal((6, len(names)))
    mfcc = np.random.default_rng(1).standard_normal((6, 40))
    baselines = feature_baselines(features, names, mfcc)
    np.testing.assert_allclose(baselines["mix_features"], standardize(features))
    np.testing.assert_allclose(baselines["stem_features"], standardize(features[:, columns]))
    np.testing.assert_allclose(baselines["mfcc"], standardize(mfcc))


def test_mfcc_statistics_tell_timbres_apart_and_ignore_the_channel_layout():
    rate = 16_000
    t = torch.arange(rate) / rate
    sine = torch.sin(2 * torch.pi * 440 * t)
    noise = torch.randn(rate, generator=torch.Generator().manual_seed(0)) * 0.3
    mixes = torch.stack([torch.stack([sine, sine]), torch.stack([noise, noise]), torch.stack([2 * sine, 0 * sine])])
    stats = mfcc_statistics(mixes, rate, n_fft=1024, hop_length=256)
    assert stats.shape == (3, 40) and torch.isfinite(stats).all()
    assert (stats[0] - stats[1]).abs().max() > 10.0  # a tone and noise have different cepstra
    torch.testing.assert_close(stats[0], stats[2])  # the mono mix is what is described
