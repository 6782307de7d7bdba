"""Fitting a console to a mix it rendered itself, and the ``mixrep console fit`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mixrep import cli
from mixrep.audio.io import read_audio, write_audio
from mixrep.console import functional as Fn
from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, evaluate, fit
from mixrep.console.graph import DRY_WET

RATE = 8000
NAMES = ["bass", "keys", "lead"]


def _stems(seconds: float = 3.0) -> torch.Tensor:
    """Three harmonic tones in separate registers with different tremolo rates."""
    torch.manual_seed(0)
    t = torch.arange(int(seconds * RATE)) / RATE
    stems = []
    for f0, rate in ((110.0, 1.3), (440.0, 2.1), (750.0, 0.7)):
        envelope = (0.5 + 0.5 * torch.sin(2 * math.pi * rate * t)) ** 2
        tone = sum(torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 6)) * envelope * 0.3
        stems.append(torch.stack([tone, 0.8 * tone + 0.05 * torch.randn_like(tone)]))
    return torch.stack(stems)


def _effective_gain_db(console: MixingConsole) -> torch.Tensor:
    """Overall gain of each track's gain/pan stage, dry/wet included (constant-power dB)."""
    p = console.parameter_dict()["gain_pan"]
    w = torch.sigmoid(p[DRY_WET])[:, None]
    gains = w * torch.exp(p["log_gain"]) + (1 - w)
    return 10 * torch.log10((gains**2).sum(-1) / 2).detach()


def test_fit_recovers_known_console():
    stems = _stems()
    # imager + gain/pan per track, no group stage: the track gains are identifiable from the mix
    # (an EQ would trade its level at each tone against the fader, a group fader against all)
    kwargs = dict(chain="sg", group_chain="", sample_rate=RATE)
    target = MixingConsole.from_tracks(NAMES, **kwargs)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t, p in target.parameter_dict().items():
            values = target.processors[t].random_parameters(len(p[DRY_WET]), gen, scale=0.5)
            if t == "gain_pan":
                gain_db = torch.rand(3, generator=gen) * 12 - 6
                values["log_gain"] = Fn.pan_to_log_gain(gain_db, torch.rand(3, generator=gen) - 0.5)
            values[DRY_WET] = torch.full((3,), 6.0)
            for k, v in values.items():
                p[k].copy_(v)
        mix = target.render(stems)
    model = MixingConsole.from_tracks(NAMES, **kwargs)
    initial = evaluate(model, stems, mix)
    config = FitConfig(steps=40, learning_rate=0.05, crop_seconds=1.0, warmup_seconds=0.2,
                       progress=False)
    result = fit(model, stems, mix, config)
    assert len(result.losses) == 40 and all(np.isfinite(result.losses))
    final = evaluate(model, stems, mix)
    assert final <= 0.2 * initial, (initial, final)
    error_db = (_effective_gain_db(model) - _effective_gain_db(target)).abs()
    assert error_db.max() < 1.5, error_db


def test_cli_console_fit_writes_outputs(tmp_path):
    stems = _stems(seconds=1.5)
    stem_dir = tmp_path / "stems"
    for name, stem in zip(NAMES, stems):
        write_audio(stem_dir / f"{name}.wav", stem.numpy(), RATE)
    mix_path = write_audio(tmp_path / "mix.wav", (0.5 * stems.sum(0)).numpy(), RATE)
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"low": ["bass"], "high": ["keys", "lead"]}))
    out = tmp_path / "out"
    code = cli.main(["console", "fit", "--stems", str(stem_dir), "--mix", str(mix_path),
                     "--groups", str(groups), "--out", str(out), "--steps", "3",
                     "--sample-rate", str(RATE), "--crop-seconds", "1.0", "--warmup-seconds",
                     "0.2", "--chain", "eg", "--no-progress"])
    assert code == 0
    rendered = read_audio(out / "mix.wav", RATE)
    assert rendered.shape == (2, stems.shape[-1]) and np.isfinite(rendered).all()
    data = json.loads((out / "parameters.json").read_text())
    assert [n["name"] for n in data["nodes"] if n["type"] == "mix"] == ["low", "high"]
    gain_nodes = [n for n in data["nodes"] if n["type"] == "gain_pan"]
    assert len(gain_nodes) == 5 and "gain_db" in gain_nodes[0]["parameters"]
    for png in ("spectrogram_error.png", "graph.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_cli_reports_bad_groups(tmp_path, capsys):
    stem_dir = tmp_path / "stems"
    write_audio(stem_dir / "a.wav", np.zeros((2, RATE), np.float32), RATE)
    mix = write_audio(tmp_path / "mix.wav", np.zeros((2, RATE), np.float32), RATE)
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"g": ["nope"]}))
    code = cli.main(["console", "fit", "--stems", str(stem_dir), "--mix", str(mix), "--groups",
                     str(groups), "--out", str(tmp_path / "o"), "--sample-rate", str(RATE)])
    assert code == 2
    message = capsys.readouterr().err
    assert f"{groups} names tracks that are not in" in message and "['nope']" in message, message


def test_fit_rejects_mismatched_mix():
    console = MixingConsole.from_tracks(["a"], chain="g", group_chain="", sample_rate=RATE)
    with pytest.raises(ValueError, match="does not match stems"):
        fit(console, torch.zeros(1, 2, 100), torch.zeros(2, 50))


@pytest.mark.parametrize("case, message", [
    ("mix_length", "must come from the same edit"),
    ("stem_length", "differ in length: b.wav"),
    ("short", "shorter than one 3.8 s training crop"),
    ("crop", "must exceed --warmup-seconds"),
])
def test_cli_refuses_inconsistent_audio_clearly(tmp_path, capsys, case, message):
    stem_dir = tmp_path / "stems"
    seconds = 1.0 if case == "short" else 5.0
    write_audio(stem_dir / "a.wav", np.zeros((2, int(seconds * RATE)), np.float32), RATE)
    write_audio(stem_dir / "b.wav", np.zeros((2, int((seconds - (1 if case == "stem_length" else 0)) * RATE)),
                                              np.float32), RATE)
    mix_seconds = seconds + (2.0 if case == "mix_length" else 0.0)
    mix = write_audio(tmp_path / "mix.wav", np.zeros((2, int(mix_seconds * RATE)), np.float32), RATE)
    extra = ["--crop-seconds", "1", "--warmup-seconds", "1"] if case == "crop" else []
    code = cli.main(["console", "fit", "--stems", str(stem_dir), "--mix", str(mix), "--out", str(tmp_path / "o"),
                     "--sample-rate", str(RATE), "--no-progress", *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
