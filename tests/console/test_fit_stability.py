"""The full default console stays finite through long fits; a non-finite step stops the fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrep import cli
from mixrep.audio.io import write_audio
from mixrep.console import functional as Fn
from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, NonFiniteFitError, fit
from mixrep.console.processors import DRY_WET

from tests.console.conftest import harmonic_tracks

RATE = 8000
NAMES = ["kick", "snare", "bass", "keys"]
GROUPS = {"drums": ["kick", "snare"], "music": ["bass", "keys"]}


def _tracks(seconds: float = 4.0) -> torch.Tensor:
    """Four harmonic tracks in separate registers, each with its own tremolo."""
    return harmonic_tracks((60.0, 200.0, 110.0, 440.0), seconds, RATE, tremolo_hz=(1, 2, 3, 4),
                           sharpness=4, harmonics=4, level=0.2, right_gain=0.9, noise=0.02)


def _gain_only_mix(stems: torch.Tensor) -> torch.Tensor:
    """The issue's case: a gain/pan console with known faders mixes the tracks."""
    target = MixingConsole.from_tracks(NAMES, GROUPS, chain="g", group_chain="", sample_rate=RATE)
    with torch.no_grad():
        target.params["gain_pan"]["log_gain"].copy_(
            torch.tensor([[-0.5, -0.6], [0.3, 0.2], [-1.0, -0.9], [0.1, 0.4]]))
        target.params["gain_pan"][DRY_WET].fill_(8.0)
        return target.render(stems)


def test_full_default_chain_stays_finite_over_a_long_fit():
    """Before the bounds, the delay's |z| left the unit disk here and the loss was NaN from step
    16 on (at the paper's lr 0.01: from step 215; on the issue's 44.1 kHz case: step 6); now every
    step, parameter and the final render stay finite."""
    stems = _tracks()
    mix = _gain_only_mix(stems)
    console = MixingConsole.from_tracks(NAMES, GROUPS, sample_rate=RATE)  # e c n s g d r twice
    config = FitConfig(steps=150, learning_rate=0.02, crop_seconds=1.0, warmup_seconds=0.25,
                       progress=False)
    result = fit(console, stems, mix, config)
    assert len(result.losses) == 150 and np.isfinite(result.losses).all()
    assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20])
    for t, params in console.params.items():
        for name, value in params.items():
            assert torch.isfinite(value).all(), f"{t}.{name}"
    radius = Fn.squash_radius(console.params["delay"]["z_delay"].detach()).norm(dim=-1)
    assert float(radius.max()) < 1.0
    assert torch.isfinite(console.render(stems)).all()


def _poison_delay(monkeypatch, from_call: int) -> None:
    """Make the delay's output infinite from its ``from_call``-th call on."""
    real = Fn.multitap_delay
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        y = real(*args, **kwargs)
        return y * float("inf") if calls["n"] > from_call else y

    monkeypatch.setattr(Fn, "multitap_delay", poisoned)


def _short_config(steps: int) -> FitConfig:
    return FitConfig(steps=steps, crop_seconds=1.0, warmup_seconds=0.25, progress=False)


def test_non_finite_loss_stops_the_fit_and_keeps_the_last_finite_parameters(monkeypatch):
    stems = _tracks(2.0)
    mix = _gain_only_mix(stems)
    reference = MixingConsole.from_tracks(NAMES, GROUPS, chain="egd", group_chain="", sample_rate=RATE)
    fit(reference, stems, mix, _short_config(3))  # three clean steps
    console = MixingConsole.from_tracks(NAMES, GROUPS, chain="egd", group_chain="", sample_rate=RATE)
    _poison_delay(monkeypatch, from_call=3)  # the delay runs once per step: step 3 is poisoned
    with pytest.raises(NonFiniteFitError) as info:
        fit(console, stems, mix, _short_config(10))
    error = info.value
    assert (error.step, error.quantity, error.node_type) == (3, "loss", "delay")
    assert error.nodes == ["kick/delay"] and "delay.z_delay" in error.parameter
    assert "step 3" in str(error) and "'delay'" in str(error)
    for t, params in console.params.items():  # exactly the parameters after steps 0, 1, 2
        for name, value in params.items():
            assert torch.equal(value, reference.params[t][name]), f"{t}.{name}"


def test_non_finite_gradient_stops_the_fit_before_the_step():
    stems = _tracks(2.0)
    mix = _gain_only_mix(stems)
    console = MixingConsole.from_tracks(NAMES, GROUPS, chain="eg", group_chain="", sample_rate=RATE)
    before = {t: {k: v.detach().clone() for k, v in p.items()} for t, p in console.params.items()}
    log_magnitude = console.params["eq"]["log_magnitude"]

    def nan_for_snare(grad):
        grad = grad.clone()
        grad[1] = float("nan")
        return grad

    log_magnitude.register_hook(nan_for_snare)
    with pytest.raises(NonFiniteFitError) as info:
        fit(console, stems, mix, _short_config(5))
    error = info.value
    assert (error.step, error.quantity, error.parameter, error.node_type) == (
        0, "gradient", "eq.log_magnitude", "eq")
    assert error.nodes == ["snare/eq"]
    for t, params in console.params.items():
        for name, value in params.items():
            assert torch.equal(value, before[t][name])


def test_cli_reports_a_non_finite_fit_and_writes_nothing(tmp_path, monkeypatch, capsys):
    stems = _tracks(2.0)
    stem_dir = tmp_path / "stems"
    for name, stem in zip(NAMES, stems):
        write_audio(stem_dir / f"{name}.wav", stem.numpy(), RATE)
    mix = write_audio(tmp_path / "mix.wav", _gain_only_mix(stems).numpy(), RATE)
    _poison_delay(monkeypatch, from_call=2)  # the initial evaluation, then fit step 0 are clean
    out = tmp_path / "fit"
    code = cli.main(["console", "fit", "--stems", str(stem_dir), "--mix", str(mix), "--out", str(out),
                     "--steps", "5", "--sample-rate", str(RATE), "--crop-seconds", "1.0",
                     "--warmup-seconds", "0.25", "--chain", "gd", "--group-chain", "",
                     "--no-progress"])
    assert code == 2
    assert "fit stopped at step 1: non-finite loss" in capsys.readouterr().err
    assert not out.exists()
