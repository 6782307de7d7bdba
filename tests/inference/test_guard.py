"""The guard between the head's prediction and the mix (issue 33): inputs far outside the training
range, a head pinned at its bounds, the engineer's ranges, timing, the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchaudio

from mixrep.cli import main as mixrep_main
from mixrep.console import functional as Fn
from mixrep.console import make_processors
from mixrep.inference import StyleTransfer
from mixrep.console.spec import align_track_levels
from mixrep.inference.guard import (
    CANDIDATES, ENGINEER_RANGES, GuardConfig, blend_consoles, clamp_to_ranges, compare_mixes, envelope_lag_ms,
    neutral_parameters, plain_stems, spectral_distance_db, stereo_extent, timing_lag_ms, track_pans,
)
from mixrep.inference.balance import console_stems
from mixrep.inference.report import physical_report
from tests.inference.test_style_transfer import SR, tone


def song(rate: int, tracks: int, seconds: float, gain_db: float = 0.0) -> np.ndarray:
    """``tracks`` different stereo tracks with a rhythm (so the envelope has a lag to find)."""
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for k in range(tracks):
        rng = np.random.default_rng(k)
        gate = (np.sin(2 * np.pi * (1.0 + 0.37 * k) * t) > 0.3).astype(np.float32)
        x = (0.2 * np.sin(2 * np.pi * 55 * 1.41 ** k * t) + 0.02 * rng.standard_normal(t.size)) * gate
        out.append(np.stack([x, (0.5 + 0.04 * k) * x]))
    return (np.stack(out) * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def reference_stems(seconds: float, gain_db: float = 0.0) -> np.ndarray:
    """Four stereo stems ``(4, 2, samples)`` at the console's rate, ``gain_db`` above the test song's level."""
    stems = np.stack([tone(seconds, 80 * (i + 1), 10 + i) * (0.5 + 0.2 * i) for i in range(4)])
    return (stems * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def pinned(transfer: StyleTransfer, logit: float = 30.0) -> StyleTransfer:
    """The head with every track setting squashed against its upper bound (what issue 33 saw)."""
    with torch.no_grad():
        transfer.head.track_decoder.linear.bias.fill_(logit)
    return transfer


def test_inputs_far_outside_training_stay_sane(tiny_head):
    """A 48 kHz song of 13 tracks, 30 dB louder than anything in training, a reference 20 dB hot:
    every guarded setting lies in the engineer's ranges, the mix's envelope lines up with the plain
    sum's and its peak stays near the plain sum's at the same loudness."""
    transfer = pinned(StyleTransfer.from_checkpoint(tiny_head))
    rate, names = 48000, [f"t{k}" for k in range(13)]
    stems = ["drums", "bass", "other", "vocals"] * 3 + ["other"]
    tracks = song(rate, 13, 4.0, gain_db=30.0)
    reference = reference_stems(4.0, gain_db=20.0)
    result = transfer.mix(tracks, reference, names, stems, sample_rate=rate)
    limits = {c: e for c, e in zip(("drums", "bass", "other", "vocals"), stereo_extent(torch.from_numpy(reference)))}
    for name, strip in result.report["tracks"].items():
        assert all(abs(v) <= 12.0 + 1e-3 for v in strip["eq"]["curve_db"].values()), (name, strip["eq"])
        assert abs(strip["gain_pan"]["pan"]) <= max(0.3, float(limits[stems[names.index(name)]])) + 1e-3
        assert ENGINEER_RANGES["gain_pan"]["gain_db"][0] - 1e-3 <= strip["gain_pan"]["gain_db"] <= 12.0 + 1e-3
        assert strip["delay"]["dry_wet"] <= 0.5 + 1e-3  # the dry path stays
    assert np.isfinite(result.mix).all()
    mix_rate = result.sample_rate  # the console's rate, or the tracks' once the output stage renders there
    raw = torch.from_numpy(tracks)
    aligned = align_track_levels(raw if mix_rate == rate else torchaudio.functional.resample(raw, rate, mix_rate))
    plain = aligned.sum(0).numpy()
    assert abs(envelope_lag_ms(result.mix, plain, mix_rate)) <= 10.0
    with torch.no_grad():
        rendered = console_stems(result.console, aligned.to(transfer.device), stems)
    assert timing_lag_ms(rendered, plain_stems(aligned, stems), mix_rate) <= 10.0
    scale = result.mix.std() / plain.std()
    assert np.abs(result.mix).max() <= 4.0 * scale * np.abs(plain).max()  # within +12 dB of the plain sum's peak


def test_a_pinned_head_falls_back_to_the_prior_and_says_so(tiny_head):
    transfer = pinned(StyleTransfer.from_checkpoint(tiny_head))
    tracks, reference = song(SR, 3, 3.0), reference_stems(3.0)
    names, stems = ["kick", "bass", "lead"], ["drums", "bass", "vocals"]
    result = transfer.mix(tracks, reference, names, stems, guard=GuardConfig(select=False))
    guard = result.guard
    for name in names:
        assert set(guard.fell_back["tracks"][name]) == {"eq", "gain_pan", "delay"}, guard.fell_back
        assert guard.confidence["tracks"][name]["eq"] < 0.5
        strip = result.report["tracks"][name]
        assert all(v == 0.0 for v in strip["eq"]["curve_db"].values())  # flat EQ
        assert strip["delay"]["dry_wet"] < 1e-3  # dry
    assert any("fell back" in w for w in guard.warnings)
    # without the guard, the same head pins every setting (what issue 33 reported)
    raw = transfer.mix(tracks, reference, names, stems, guard=GuardConfig(enabled=False, select=False), max_clips=0)
    assert all(strip["eq"]["curve_db"]["1000_hz"] > 19.0 for strip in raw.report["tracks"].values())
    assert all(strip["delay"]["dry_wet"] > 0.99 for strip in raw.report["tracks"].values())


def test_the_reference_loudness_no_longer_moves_the_prediction(tiny_head):
    """Training references sit at -14 LUFS; a reference 20 dB hotter gave z-scores in the
    thousands. Each clip is now set to the training loudness first."""
    transfer = StyleTransfer.from_checkpoint(tiny_head)
    reference = torch.from_numpy(reference_stems(3.0))
    quiet = transfer.reference_embedding(reference, SR)
    hot = transfer.reference_embedding(reference * 10.0, SR)
    assert torch.allclose(quiet, hot, atol=1e-3)
    before = transfer.reference_embedding(reference * 10.0, SR, normalise=False)  # the old behaviour
    assert float(transfer.reference_z(before).abs().max()) > 2 * float(transfer.reference_z(hot).abs().max())


def test_standardised_reference_is_clamped_and_ignores_inputs_without_training_spread(tiny_head):
    from mixrep.models.head import DEGENERATE_SCALE, REFERENCE_Z_LIMIT

    head = StyleTransfer.from_checkpoint(tiny_head).head
    with torch.no_grad():
        head.reference_scale[0] = 1e-3  # an input constant in training (the mix's loudness)
    far = head.reference_mean + 1e6 * head.reference_scale
    z = head.standardise_reference(far[None])[0]
    informative = head.reference_scale > DEGENERATE_SCALE
    assert torch.allclose(z[informative], torch.full_like(z[informative], REFERENCE_Z_LIMIT))
    assert float(z[0]) == 0.0
    assert float(head.standardise_reference(far[None], clamp=False)[0, informative].min()) > 1e5


def test_the_head_runs_on_clips_of_its_training_length(tiny_head):
    transfer = StyleTransfer.from_checkpoint(tiny_head)
    clip = int(round(transfer.data_config["clip_seconds"] * SR))
    one = song(SR, 2, clip / SR)
    tracks = torch.from_numpy(np.concatenate([one] * 5, -1))  # the same clip five times
    embedding = transfer.reference_embedding(torch.from_numpy(reference_stems(3.0)), SR)
    prediction = transfer.predict_graph(tracks, ["a", "b"], ["drums", "bass"], embedding, max_clips=3)
    assert prediction.track_clip_rows.shape[:2] == (3, 2)
    assert torch.allclose(prediction.track_clip_rows[0], prediction.track_clip_rows[-1], atol=1e-4)
    whole = transfer.predict_graph(tracks, ["a", "b"], ["drums", "bass"], embedding, max_clips=0)
    assert whole.track_clip_rows.shape[0] == 1


@pytest.mark.parametrize("node_type", ["gain_pan", "eq", "compressor", "noisegate", "imager", "delay", "reverb"])
def test_every_processor_is_clamped_into_the_engineers_range(node_type):
    processor = make_processors(SR, eq={"bins": 64}, reverb={"ir_seconds": 0.5})[node_type]
    specs = {**processor.parameter_specs(), "dry_wet_logit": processor.dry_wet_spec()}
    for end in ("low", "high"):
        raw = {k: torch.full((2, *s.shape), getattr(s, end)) for k, s in specs.items()}
        clamped = clamp_to_ranges(node_type, raw, torch.tensor([0.4, 0.4]))
        physical = processor.to_physical(**{k: v for k, v in clamped.items() if k != "dry_wet_logit"})
        ranges = ENGINEER_RANGES[node_type]
        if node_type == "gain_pan":
            assert ((physical["gain_db"] >= -30.0 - 1e-3) & (physical["gain_db"] <= 12.0 + 1e-3)).all()
            assert (physical["pan"].abs() <= 0.4 + 1e-4).all()
        elif node_type == "eq":
            assert (physical["gain_db"].abs() <= 12.0 + 1e-4).all()
        elif node_type in ("compressor", "noisegate"):
            assert (physical["ratio"] <= ranges["ratio"][1] + 1e-4).all()
            low, high = ranges["threshold_db"]
            assert ((physical["threshold_db"] >= low - 1e-3) & (physical["threshold_db"] <= high + 1e-3)).all()
        elif node_type == "imager":
            assert (physical["width"] <= 2.0 + 1e-4).all()
        else:
            assert (torch.sigmoid(clamped["dry_wet_logit"]) <= 0.5).all()
        wide = clamp_to_ranges(node_type, raw, None, wide=True)
        if node_type not in ("delay", "reverb"):
            assert all(torch.equal(wide[k], raw[k]) for k in raw)  # --wide-ranges: the safe ranges alone


def test_neutral_parameters_are_transparent():
    processors = make_processors(SR, eq={"bins": 64}, reverb={"ir_seconds": 0.5})
    x = torch.from_numpy(song(SR, 1, 1.0))
    for node_type in ("gain_pan", "eq", "compressor", "noisegate", "imager"):
        p = processors[node_type]
        params = neutral_parameters(node_type, p.random_parameters(1, torch.Generator().manual_seed(0)))
        assert torch.allclose(p(x, **params), x, atol=1e-4), node_type


def test_compare_mixes_prefers_the_reference_itself():
    reference = torch.from_numpy(reference_stems(2.0))
    moved = reference.clone()
    moved[0] *= 4.0
    moved[1, 0] *= 0.1
    out = compare_mixes({"same": reference, "moved": moved}, reference, SR)
    assert out["same"]["distance"] == pytest.approx(0.0, abs=1e-3)
    assert out["moved"]["loudness_db"] > 1.0 and out["moved"]["pan_db"] > 1.0


def test_the_selection_renders_the_candidate_closest_to_the_reference_spectra(tiny_head):
    transfer = pinned(StyleTransfer.from_checkpoint(tiny_head))
    tracks, reference = song(SR, 3, 3.0), reference_stems(3.0)
    names, stems = ["kick", "bass", "lead"], ["drums", "bass", "vocals"]
    result = transfer.mix(tracks, reference, names, stems, guard=GuardConfig(enabled=False))
    scores = {name: result.guard.comparison[name]["spectra_db"] for name in CANDIDATES}
    best = min(("head", "half-way"), key=scores.get)
    margin = GuardConfig().margin
    assert result.guard.selected == (best if scores[best] < (1 - margin) * scores["balance only"] else "balance only")
    # the pinned head's +20 dB EQ and width are far from these plain reference stems
    assert result.guard.selected != "head" and scores["head"] > scores[result.guard.selected] + 1.0
    if result.guard.selected == "balance only":
        assert all(strip["eq"]["curve_db"]["1000_hz"] == 0.0 for strip in result.report["tracks"].values())
    assert any(f"rendering {result.guard.selected}" in w for w in result.guard.warnings)
    kept = transfer.mix(tracks, reference, names, stems, guard=GuardConfig(enabled=False, select=False))
    assert kept.guard.selected == "head" and any("kept as asked" in w for w in kept.guard.warnings)
    assert max(s["eq"]["curve_db"]["1000_hz"] for s in kept.report["tracks"].values()) > 15.0


def test_spectral_distance_sees_an_eq_and_a_width_change_but_not_level_or_notes():
    reference = torch.from_numpy(reference_stems(3.0))
    assert spectral_distance_db(reference * 8.0, reference, SR) == pytest.approx(0.0, abs=1e-3)
    other_notes = torch.from_numpy(np.stack([tone(3.0, 80 * (i + 1), 20 + i) * (0.5 + 0.2 * i) for i in range(4)]))
    bright = torchaudio.functional.highpass_biquad(reference, SR, 2000.0)
    narrow = reference.mean(1, keepdim=True).expand_as(reference).contiguous()
    changed = {name: spectral_distance_db(audio, reference, SR) for name, audio in
               (("notes", other_notes), ("eq", reference + 2.0 * bright), ("width", narrow))}
    assert changed["eq"] > 1.0 and changed["width"] > 1.0
    assert changed["notes"] < min(changed["eq"], changed["width"])


def test_blending_consoles_moves_every_setting_part_of_the_way(tiny_head):
    transfer = pinned(StyleTransfer.from_checkpoint(tiny_head))
    tracks = torch.from_numpy(song(SR, 2, 2.0))
    names, stems = ["a", "b"], ["drums", "bass"]
    prior = transfer.balanced_prior(names, stems, tracks, torch.from_numpy(reference_stems(2.0)))
    head = transfer.predict(tracks, names, stems, torch.zeros(transfer.head.config.reference_dim))
    half = blend_consoles(prior, head, 0.5)
    a, b, c = (x.parameter_dict()["eq"]["log_magnitude"] for x in (prior, head, half))
    assert torch.allclose(c, (a + b) / 2) and not torch.allclose(a, b)
    assert torch.equal(blend_consoles(prior, head, 1.0).parameter_dict()["eq"]["log_magnitude"], b)


def test_mix_report_prints_confidence_and_comparison(tiny_head, tmp_path, capsys):
    from mixrep.audio.io import write_audio

    folder, ref = tmp_path / "song", tmp_path / "ref"
    for name, track in zip(("kick", "bass", "lead"), song(SR, 3, 3.0, gain_db=30.0)):
        write_audio(folder / f"{name}.wav", track, SR)
    for stem, audio in zip(("drums", "bass", "other", "vocals"), reference_stems(3.0)):
        write_audio(ref / f"{stem}.wav", audio, SR)
    out = tmp_path / "mix.wav"
    assert mixrep_main(["mix", "--tracks", str(folder), "--reference-stems", str(ref), "--head", str(tiny_head),
                        "--out", str(out), "--report"]) == 0
    printed = capsys.readouterr().out
    assert "confidence per setting" in printed and "balance only" in printed and "plain sum" in printed
    assert "half-way" in printed and "<- rendered" in printed
    settings = json.loads(out.with_suffix(".json").read_text())
    guard = settings["guard"]
    assert set(guard["confidence"]["tracks"]) == {"kick", "bass", "lead"}
    assert set(guard["comparison"]) == {"plain sum", *CANDIDATES} and guard["selected"] in CANDIDATES
    assert all(math.isfinite(v) for v in guard["comparison"]["head"].values())


def test_envelope_lag_finds_a_delay():
    x = song(SR, 1, 3.0)[0]
    late = np.concatenate([np.zeros((2, int(0.1 * SR)), np.float32), x[:, : -int(0.1 * SR)]], -1)
    assert envelope_lag_ms(late, x, SR) == pytest.approx(100.0, abs=10.0)
    assert envelope_lag_ms(x, x, SR) == 0.0
    stems = torch.from_numpy(np.stack([x, late, np.zeros_like(x), x]))
    assert timing_lag_ms(stems, torch.from_numpy(np.stack([x, x, x, x])), SR) == pytest.approx(100.0, abs=10.0)


def test_track_pans_reads_the_faders(tiny_head):
    transfer = StyleTransfer.from_checkpoint(tiny_head)
    console = transfer.balanced_prior(["a", "b"], ["drums", "bass"], torch.from_numpy(song(SR, 2, 2.0)),
                                      torch.from_numpy(reference_stems(2.0)))
    with torch.no_grad():
        console.params["gain_pan"]["log_gain"][0] = Fn.pan_to_log_gain(torch.tensor([0.0]), torch.tensor([-1.0]))[0]
    assert float(track_pans(console).min()) == pytest.approx(-1.0, abs=1e-3)
    assert physical_report(console)["tracks"]["a"]["gain_pan"]["pan"] == pytest.approx(-1.0, abs=1e-3)
