"""The torch renderer of the mixing-style space against the pedalboard renderer it models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pedalboard
import pytest
import torch

from mixrep.console.style_render import StyleTensors, bus_fft_lengths, render_buses, render_strips, render_style
from mixrep.constants import STEMS
from mixrep.styles.mix_style import (
    ChannelStrip,
    DelayBus,
    MixStyle,
    MixStyleConfig,
    ReverbBus,
    _render_strip,
    render_mix,
    sample_mix_style,
)

SAMPLE_RATE = 44100
NAMES = ["kick", "bass", "keys", "vox", "pad"]
GROUPS = ["drums", "bass", "other", "vocals", "other"]


def _every_effect() -> MixStyleConfig:
    """Every processor present in every strip (probabilities 1)."""
    config = MixStyleConfig().every_processor()
    config.reverb = dataclasses.replace(config.reverb, room_size_range=(0.1, 0.6))
    return config


def _tracks(seconds: float = 1.0, seed: int = 0, silent: tuple[int, ...] = ()) -> np.ndarray:
    """Decaying noise bursts (4 per second) with distinct levels per track, stereo. ``(5, 2, samples)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    envelope = np.exp(-(np.arange(n) / SAMPLE_RATE % 0.25) * 16.0)
    levels = np.array([0.3, 0.1, 0.05, 0.2, 0.02])[:, None, None]
    tracks = (rng.standard_normal((len(NAMES), 2, n)) * envelope * levels).astype(np.float32)
    tracks[list(silent)] = 0.0
    return tracks


def _level_db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.square(x).mean(axis=(-2, -1)) + 1e-20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whole_mix_matches_render_mix_with_every_processor(seed):
    style = sample_mix_style(_every_effect(), np.random.default_rng(seed), names=NAMES + list(STEMS))
    tracks = _tracks(seed=seed, silent=(4,))  # a silent track bypasses its relative processors, as there
    reference = render_mix(tracks, style, SAMPLE_RATE, NAMES, GROUPS)
    out = render_style(torch.from_numpy(tracks), StyleTensors.from_style(style, NAMES, GROUPS), SAMPLE_RATE).numpy()
    assert out.shape == reference.shape == (4, 2, tracks.shape[-1])
    assert np.abs(out - reference).max() < 2e-3 * np.abs(reference).max()
    assert np.abs(_level_db(out) - _level_db(reference)).max() < 0.01


@pytest.mark.parametrize("seed", [3, 4])
def test_default_styles_match_render_mix(seed):
    style = sample_mix_style(MixStyleConfig(), np.random.default_rng(seed), names=NAMES + list(STEMS))
    tracks = _tracks(seed=seed)
    reference = render_mix(tracks, style, SAMPLE_RATE, NAMES, GROUPS)
    out = render_style(torch.from_numpy(tracks), StyleTensors.from_style(style, NAMES, GROUPS), SAMPLE_RATE).numpy()
    assert np.abs(out - reference).max() < 2e-3 * np.abs(reference).max()


def test_the_longest_reverb_tail_is_kept_up_to_tail_db():
    # room size 0.95: the loop gain per pass is 0.966, 80 dB of decay take 10 s; the FFT must cover them
    send = _tracks(seconds=1.0)[0]
    reference = pedalboard.Reverb(room_size=0.95, damping=0.1, width=1.0, wet_level=1.0 / 3.0, dry_level=0.0)(
        send, SAMPLE_RATE)
    style = MixStyle({stem: ChannelStrip(reverb_send_db=0.0) for stem in STEMS}, reverb=ReverbBus(0.95, 0.1, 1.0))
    tensors = StyleTensors.from_style(style, ["drums"], ["drums"]).map(lambda x: x.unsqueeze(0))
    sends = torch.zeros(1, len(STEMS), *send.shape)
    sends[0, 0] = torch.from_numpy(send)
    errors = {}
    for tail_db in (20.0, 80.0):
        out = render_buses(torch.zeros_like(sends), sends, tensors, SAMPLE_RATE, tail_db)[0].numpy()
        assert not out[1:].any()  # the other stems sent nothing
        errors[tail_db] = np.abs(out[0] - reference).max() / np.abs(reference).max()
    assert bus_fft_lengths(tensors, SAMPLE_RATE, SAMPLE_RATE, 80.0)[1] >= 11 * SAMPLE_RATE
    assert errors[80.0] < 1e-4  # -80 dB
    assert errors[20.0] > 10 * errors[80.0]  # a short FFT wraps the tail onto the clip


@pytest.mark.parametrize("pan,width", [(-1.0, 0.0), (-0.3, 1.6), (0.0, 1.0), (0.7, 0.4), (1.0, 1.2)])
def test_fader_width_and_pan_are_exact(pan, width):
    strip = ChannelStrip(fader_db=-4.5, pan=pan, width=width)
    style = MixStyle(strips={s: strip for s in STEMS})
    tracks = _tracks(seconds=0.5)
    tensors = StyleTensors.from_style(style, NAMES, GROUPS).map(lambda x: x.unsqueeze(0))
    out = render_strips(torch.from_numpy(tracks).unsqueeze(0), tensors, SAMPLE_RATE)[0].numpy()
    reference = np.stack([_render_strip(track, strip, SAMPLE_RATE) for track in tracks])
    assert np.abs(out - reference).max() < 1e-6  # float32 rounding: the same arithmetic


def test_round_trip_to_a_settings_file_keeps_every_setting():
    style = sample_mix_style(_every_effect(), np.random.default_rng(5), names=NAMES + list(STEMS))
    back = StyleTensors.from_style(style, NAMES, GROUPS, dtype=torch.float64).to_mix_style(NAMES)
    for name, group in zip(NAMES, GROUPS):
        assert back.strip_for(name, group) == style.strip_for(name, group)
    assert (back.delay, back.reverb, back.master, back.loudness_lufs) == (
        style.delay, style.reverb, style.master, style.loudness_lufs)
    # a style without buses: sends do not survive without their bus, absent stays absent
    bare = MixStyle(strips={s: ChannelStrip(delay_send_db=-10.0) for s in STEMS})
    strip = StyleTensors.from_style(bare, NAMES, GROUPS).to_mix_style(NAMES).strips["kick"]
    assert strip == ChannelStrip()


def test_batch_of_songs_with_different_track_counts_equals_one_at_a_time():
    styles = [sample_mix_style(_every_effect(), np.random.default_rng(s), names=NAMES + list(STEMS)) for s in (6, 7)]
    styles[1] = dataclasses.replace(styles[1], delay=None, master=dataclasses.replace(styles[1].master, limiter=None))
    songs = [_tracks(seed=1), _tracks(seed=2)[:3]]
    names, groups = [NAMES, NAMES[:3]], [GROUPS, GROUPS[:3]]
    batch = StyleTensors.from_styles(styles, names, groups)
    assert batch.track_mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    padded = np.zeros((2, 5, 2, songs[0].shape[-1]), dtype=np.float32)
    padded[0], padded[1, :3] = songs[0], songs[1]
    out = render_style(torch.from_numpy(padded), batch, SAMPLE_RATE)
    for b in range(2):
        single = render_style(torch.from_numpy(songs[b]), StyleTensors.from_style(styles[b], names[b], groups[b]),
                              SAMPLE_RATE)
        torch.testing.assert_close(out[b], single, atol=1e-5, rtol=1e-4)
        back = batch.select(b).to_mix_style(names[b])  # float32: settings equal to 1e-6
        assert (back.delay is None) == (styles[b].delay is None) and (back.master.limiter is not None) == (b == 0)
        assert back.strips[names[b][0]].fader_db == pytest.approx(styles[b].strip_for(names[b][0], "").fader_db)


# the loudness normalisation cancels a gain applied to the whole mix: these settings only scale it
_SCALE_ONLY = {"master_compressor_makeup_db", "limiter_ceiling_db"}


def test_gradients_reach_every_continuous_setting():
    style = sample_mix_style(_every_effect(), np.random.default_rng(8), names=NAMES + list(STEMS))
    tensors = StyleTensors.from_style(style, NAMES, GROUPS, dtype=torch.float64)
    settings = {k: v.clone().requires_grad_(True) for k, v in tensors.settings().items()}
    tensors = tensors.replace(**settings)
    tracks = torch.from_numpy(_tracks(seconds=0.6, silent=(4,))).double()
    out = render_style(tracks, tensors, SAMPLE_RATE)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
    (out * weights).sum().backward()
    masks = dict.fromkeys(("eq_frequency_hz", "eq_gain_db", "eq_q"), tensors.eq_on)
    live = tensors.track_mask.clone()
    live[4] = False  # the silent track's settings cannot change the mix
    for name, value in settings.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
        grad = value.grad
        if name in _SCALE_ONLY:
            assert grad.abs().max() < 1e-6, name
            continue
        if grad.ndim >= 1 and grad.shape[0] == len(NAMES) and not name.startswith("master"):
            grad = grad[live]
            if name in masks:
                grad = grad[masks[name][live]]
        assert (grad != 0).all(), name


def test_silent_song_stays_silent_with_finite_gradients():
    style = sample_mix_style(_every_effect(), np.random.default_rng(9), names=NAMES + list(STEMS))
    tensors = StyleTensors.from_style(style, NAMES, GROUPS)
    fader = tensors.fader_db.clone().requires_grad_(True)
    out = render_style(torch.zeros(len(NAMES), 2, SAMPLE_RATE // 2), tensors.replace(fader_db=fader), SAMPLE_RATE)
    assert (out == 0).all()
    out.sum().backward()
    assert torch.isfinite(fader.grad).all()


def test_clear_errors_for_bad_input():
    style = sample_mix_style(MixStyleConfig(), np.random.default_rng(0), names=list(STEMS))
    tensors = StyleTensors.from_style(style, NAMES, GROUPS)
    with pytest.raises(ValueError, match="do not fit style tensors"):
        render_style(torch.zeros(4, 2, SAMPLE_RATE), tensors, SAMPLE_RATE)
    with pytest.raises(ValueError, match="non-finite"):
        render_style(torch.full((5, 2, SAMPLE_RATE), float("nan")), tensors, SAMPLE_RATE)
    with pytest.raises(ValueError, match="at least 0.4 s"):
        render_style(torch.zeros(5, 2, 100), tensors, SAMPLE_RATE)
    delay = MixStyle(strips={s: ChannelStrip(delay_send_db=-6.0) for s in STEMS}, delay=DelayBus(0.1, 0.5))
    unstable = StyleTensors.from_style(delay, NAMES, GROUPS)
    with pytest.raises(ValueError, match=r"delay_feedback must lie in \[0, 1\)"):
        render_style(torch.zeros(5, 2, SAMPLE_RATE), unstable.replace(delay_feedback=torch.tensor(1.0)), SAMPLE_RATE)
    with pytest.raises(ValueError, match="no strip for track"):
        StyleTensors.from_style(MixStyle(strips={"drums": ChannelStrip()}), ["x"], ["bass"])
    with pytest.raises(ValueError, match="use select"):
        StyleTensors.from_styles([style], [NAMES], [GROUPS]).to_mix_style(NAMES)
    fitted = tensors.replace(fader_db=tensors.fader_db + torch.arange(5.0))
    with pytest.raises(ValueError, match="two tracks named 'a'"):
        fitted.to_mix_style(["a", "a", "b", "c", "d"])


@pytest.mark.parametrize("name,index", [("fader_db", 1), ("pan", 2), ("width", 0), ("eq_gain_db", (3, 1)),
                                        ("highpass_hz", 1), ("compressor_threshold_db", 0),
                                        ("saturation_drive_db", 3), ("reverb_send_db", 2), ("reverb_room_size", ()),
                                        ("reverb_damping", ()), ("delay_feedback", ()), ("master_eq_gain_db", 0),
                                        ("limiter_drive_db", ()), ("loudness_lufs", ())])
def test_gradients_equal_finite_differences(name, index):
    style = sample_mix_style(_every_effect(), np.random.default_rng(10), names=NAMES + list(STEMS))
    tensors = StyleTensors.from_style(style, NAMES, GROUPS, dtype=torch.float64)
    tracks = torch.from_numpy(_tracks(seconds=0.5)).double()
    weights = torch.randn(4, 2, tracks.shape[-1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(value: torch.Tensor) -> torch.Tensor:
        return (render_style(tracks, tensors.replace(**{name: value}), SAMPLE_RATE) * weights).sum()

    value = getattr(tensors, name).clone().requires_grad_(True)
    loss(value).backward()
    # small steps: the hard knee, the limiter's minima and the loudness gates are kinks a wide step straddles
    step = 1e-6 * max(1.0, abs(float(value.detach()[index])))
    plus, minus = value.detach().clone(), value.detach().clone()
    plus[index] += step
    minus[index] -= step
    numeric = (loss(plus) - loss(minus)) / (2 * step)
    assert float(value.grad[index]) == pytest.approx(float(numeric), rel=1e-3, abs=1e-6)
