"""Initial transparency, the musical prior, known-answer cases and the track-level metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from mixrep import cli
from mixrep.audio.io import read_audio
from mixrep.console import functional as Fn
from mixrep.graphs.cases import make_case
from mixrep.console.console import MixingConsole
from mixrep.console.loss import MixLoss
from mixrep.graphs.recovery import level_errors, track_contributions, track_levels
from mixrep.console.prior import MusicalPrior, sample_mask, sample_parameters
from mixrep.console.processors import DRY_WET, dry_wet_weight

from tests.console.conftest import SMALL, TEST_RATE, harmonic_tracks, random_params

NAMES = ["kick", "bass", "keys", "lead"]
GROUPS = {"rhythm": ["kick", "bass"], "music": ["keys", "lead"]}


def _tracks(seconds: float = 3.0) -> torch.Tensor:
    return harmonic_tracks((55.0, 110.0, 330.0, 660.0), seconds)


def test_initial_console_is_close_to_the_plain_sum():
    """The full default console starts near a transparent mix: within 0.3 dB of the sum of the
    tracks at unity gain (the echo effects' 0.7 % dry/wet) and an audio loss a small fraction of a
    6 dB level error's."""
    stems = _tracks()
    console = MixingConsole.from_tracks(NAMES, GROUPS, sample_rate=TEST_RATE)
    with torch.no_grad():
        rendered = console.render(stems)
    plain = stems.sum(0)
    level_db = 10 * math.log10(float((rendered**2).mean() / (plain**2).mean()))
    assert abs(level_db) < 0.3, level_db
    loss = MixLoss(TEST_RATE)
    assert float(loss(rendered, plain)) < 0.1 * float(loss(0.5 * plain, plain))


def test_prior_draws_musical_settings_in_range():
    console = MixingConsole.from_tracks(NAMES, GROUPS, sample_rate=TEST_RATE, processor_options=SMALL)
    processors = dict(console.processors)
    prior = MusicalPrior()
    params = sample_parameters(console.graph, processors, prior, torch.Generator().manual_seed(3))
    for t, p in params.items():  # drawn inside the safe ranges
        raw = {k: v for k, v in p.items() if k != DRY_WET}
        for k, v in processors[t].constrain(raw).items():
            assert torch.equal(v, raw[k]), (t, k)
    comp = processors["compressor"].to_physical(**{k: v for k, v in params["compressor"].items()
                                                   if k != DRY_WET})
    assert comp["ratio"].min() >= prior.compressor_ratio[0] - 1e-4
    assert comp["ratio"].max() <= prior.compressor_ratio[1] + 1e-4
    assert comp["threshold_db"].min() >= prior.compressor_threshold_db[0] - 1e-3
    pan = processors["gain_pan"].to_physical(log_gain=params["gain_pan"]["log_gain"])["pan"]
    assert pan[:4].abs().max() <= prior.pan[1] + 1e-4 and pan[4:].abs().max() <= prior.group_pan[1] + 1e-4
    weights = dry_wet_weight(params["delay"][DRY_WET])
    assert weights.min() >= prior.delay_mix[0] - 1e-4 and weights.max() <= prior.delay_mix[1] + 1e-4
    echoes = processors["delay"].to_physical(**{k: v for k, v in params["delay"].items()
                                                if k != DRY_WET})["tap_gain_db"]
    active = (echoes > -40).sum(-1)  # per node and channel
    assert active.min() >= prior.delay_echoes[0] and active.max() <= prior.delay_echoes[1]
    sparse = sample_mask(console.graph, MusicalPrior(active_probability={"eq": 0.0, "reverb": 0.5}),
                         torch.Generator().manual_seed(0))
    types = console.graph.node_types
    assert all(sparse[v] == 0 for v, t in enumerate(types) if t == "eq")
    assert all(sparse[v] == 1 for v, t in enumerate(types) if t in ("gain_pan", "input", "mix"))


def test_case_is_loudness_matched_and_reproducible():
    stems = _tracks()
    case = make_case(stems, NAMES, GROUPS, TEST_RATE, seed=5, processor_options=SMALL)
    plain = stems.sum(0)
    assert abs(10 * math.log10(float((case.mix**2).mean() / (plain**2).mean()))) < 0.05
    again = make_case(stems, NAMES, GROUPS, TEST_RATE, seed=5, processor_options=SMALL)
    assert torch.equal(case.mix, again.mix)
    assert torch.isfinite(case.mix).all()
    assert not torch.allclose(case.mix, make_case(stems, NAMES, GROUPS, TEST_RATE, seed=6,
                                                  processor_options=SMALL).mix)


def test_case_with_audible_db_keeps_only_what_one_can_hear():
    """Steady tones never fall under a gate's -75..-55 dB threshold: with ``audible_db`` the drawn
    gates leave the true graph, an impossible threshold removes every optional processor and
    leaves the mandatory types (probability 1) alone, and the mix is always the true graph's."""
    stems = _tracks()
    prior = MusicalPrior(active_probability={"noisegate": 0.999, "eq": 0.999})

    def kept(case, node_type):
        graph = case.console.graph
        return sum(int(graph.mask[v]) for v in graph.nodes_of_type(node_type))

    drawn = make_case(stems, NAMES, GROUPS, TEST_RATE, seed=2, prior=prior, processor_options=SMALL)
    audible = make_case(stems, NAMES, GROUPS, TEST_RATE, seed=2, prior=prior, processor_options=SMALL,
                        audible_db=1.0)
    nothing = make_case(stems, NAMES, GROUPS, TEST_RATE, seed=2, prior=prior, processor_options=SMALL,
                        audible_db=1000.0)
    gates = len(drawn.console.graph.nodes_of_type("noisegate"))
    assert kept(drawn, "noisegate") == gates > 0 and kept(audible, "noisegate") == 0
    assert kept(nothing, "eq") == 0 < kept(drawn, "eq")
    assert kept(nothing, "compressor") == kept(drawn, "compressor") > 0
    for case in (drawn, audible, nothing):
        with torch.no_grad():
            assert torch.allclose(case.console.render_long(stems), case.mix, atol=1e-6)


def test_track_levels_of_a_gain_pan_console_are_its_faders():
    stems = _tracks(1.0)
    console = MixingConsole.from_tracks(NAMES, chain="g", group_chain="", sample_rate=TEST_RATE)
    gain_db, pan = torch.tensor([-6.0, 0.0, 3.0, -12.0]), torch.tensor([-0.5, 0.0, 0.25, 0.9])
    with torch.no_grad():
        console.params["gain_pan"]["log_gain"].copy_(Fn.pan_to_log_gain(gain_db, pan))
        console.params["gain_pan"][DRY_WET].fill_(10.0)
    levels = track_levels(console, stems)
    # solo level = fader gain for a centred (identical-channel) track; here the right channel is
    # 0.8 x the left, so compare with the dry track panned by the same law
    for k in range(4):
        left, right = stems[k, 0], stems[k, 1]
        gains = torch.exp(Fn.pan_to_log_gain(gain_db[k : k + 1], pan[k : k + 1]))[0]
        expected_energy = ((gains[0] * left) ** 2).mean() + ((gains[1] * right) ** 2).mean()
        expected_db = 10 * math.log10(float(expected_energy / (stems[k] ** 2).mean() / 2))
        assert abs(float(levels.gain_db[k]) - expected_db) < 1e-3
    errors = level_errors(console, console, stems)
    assert float(errors.gain_db.max()) == 0.0 and float(errors.pan.max()) == 0.0


def test_track_contributions_sum_to_the_mix(small_processors):
    """With the subgroup dynamics frozen at their in-mix gains the console is linear in the
    tracks: the contributions add up to the mix, and a track-level-only console's contributions
    are the solo renders."""
    stems = _tracks(1.5)
    console = MixingConsole.from_tracks(NAMES, GROUPS, sample_rate=TEST_RATE, processor_options=SMALL)
    with torch.no_grad():
        for t, p in random_params(console.graph, small_processors, 2).items():
            for k, v in p.items():
                console.params[t][k].copy_(v)
    parts = track_contributions(console, stems)
    mix = console.render(stems).detach()
    assert parts.shape == stems.shape
    assert (parts.sum(0) - mix).abs().max() < 1e-5 * mix.abs().max() + 1e-6
    tracks_only = MixingConsole.from_tracks(NAMES, GROUPS, group_chain="", sample_rate=TEST_RATE,
                                            processor_options=SMALL)
    with torch.no_grad():
        for t, p in random_params(tracks_only.graph, small_processors, 3).items():
            for k, v in p.items():
                tracks_only.params[t][k].copy_(v)
    solo = torch.zeros_like(stems)
    solo[2] = stems[2]
    assert torch.allclose(track_contributions(tracks_only, stems)[2], tracks_only.render(solo).detach(),
                          atol=1e-6)


def test_cli_make_case_writes_a_fittable_case(tmp_path, capsys):
    out = tmp_path / "case"
    assert cli.main(["console", "make-case", "--out", str(out), "--tracks", "5", "--seconds", "4",
                     "--sample-rate", str(TEST_RATE), "--seed", "1"]) == 0
    names = sorted(p.stem for p in (out / "stems").iterdir())
    assert names == ["bass_1", "drums_1", "drums_2", "other_1", "vocals_1"]
    groups = json.loads((out / "groups.json").read_text())
    assert groups == {"rhythm": ["drums_1", "bass_1", "drums_2"], "music": ["other_1", "vocals_1"]}
    truth = MixingConsole.from_json(out / "true_parameters.json")
    assert truth.track_names == ["drums_1", "bass_1", "other_1", "vocals_1", "drums_2"]
    mix = read_audio(out / "mix.wav", TEST_RATE)
    stems = torch.stack([torch.from_numpy(read_audio(out / "stems" / f"{n}.wav", TEST_RATE))
                         for n in truth.track_names])
    # the stored parameters reproduce the stored mix (float WAV, JSON in physical units)
    assert np.abs(truth.render_long(stems).numpy() - mix).max() < 1e-3
    assert "mixrep console fit --stems" in capsys.readouterr().out
    code = cli.main(["console", "fit", "--stems", str(out / "stems"), "--mix", str(out / "mix.wav"),
                     "--groups", str(out / "groups.json"), "--out", str(tmp_path / "fit"),
                     "--steps", "2", "--sample-rate", str(TEST_RATE), "--crop-seconds", "1.5",
                     "--warmup-seconds", "0.5", "--true-parameters", str(out / "true_parameters.json"),
                     "--no-progress"])
    assert code == 0
    losses = json.loads((tmp_path / "fit" / "losses.json").read_text())
    assert len(losses["train"]) == 2 and losses["initial"] > 0
    assert sorted(losses["gain_error_db"]) == names and all(v >= 0 for v in losses["pan_error"].values())
    assert "gain error dB" in capsys.readouterr().out
    assert cli.main(["console", "make-case", "--out", str(tmp_path / "bad"), "--audible-db", "-1"]) == 2
    assert "--audible-db -1.0: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
