"""Conversions between the mixing-style settings and the console's parameters, both ways."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mixrep import cli
from mixrep.audio.primitives import rms_db
from mixrep.console import MixingConsole
from mixrep.console import functional as Fn
from mixrep.console.processors import DRY_WET
from mixrep.console.strips import strip_nodes
from mixrep.console.style_convert import (
    _DAMPING_GRID, _ROOM_GRID, console_from_style, eq_fit_grid, fit_eq_curves, style_from_console,
    style_json_path,
)
from mixrep.console.style_dsp import eq_band_response
from mixrep.styles.mix_style import (
    ChannelStrip, CompressorSettings, DelayBus, EqBand, LimiterSettings, MasterBus, MixStyle, MixStyleConfig,
    ReverbBus, _render_strip, sample_mix_style,
)
from mixrep.styles.style_file import read_style_json

RATE = 16000
NAMES = ["drums", "bass", "other", "vocals"]
SHORT = {"reverb": {"ir_seconds": 0.5}}


def _noise_tracks(count: int, seconds: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(count, 2, int(seconds * RATE), generator=gen)


def test_fader_pan_width_render_the_style_strips_per_channel_gains():
    """Fader, pan (the two pan laws) and width: the console's render equals the style's strips'."""
    style = MixStyle({"a": ChannelStrip(fader_db=-4.0, pan=0.6, width=0.3),
                      "b": ChannelStrip(fader_db=3.0, pan=-1.0),
                      "c": ChannelStrip(fader_db=0.5, pan=0.0, width=1.4)})
    names = ["a", "b", "c"]
    tracks = _noise_tracks(3, 0.5)
    console = console_from_style(style, names, ["drums", "bass", "other"], sample_rate=RATE,
                                 processor_options=SHORT).console
    with torch.no_grad():
        for k, name in enumerate(names):
            solo = torch.zeros_like(tracks)
            solo[k] = tracks[k]
            ours = console.render(solo).numpy()
            reference = _render_strip(tracks[k].numpy(), style.strips[name], RATE)
            # within -76 dB of the peak: the silent side of a hard pan is gain/pan's floor, -80 dB
            np.testing.assert_allclose(ours, reference, atol=1.5e-4 * np.abs(reference).max(), err_msg=name)
            if name != "b":
                np.testing.assert_allclose(ours, reference, atol=2e-5 * np.abs(reference).max(), err_msg=name)


def _strip_curve_db(strip: ChannelStrip, grid: torch.Tensor) -> torch.Tensor:
    from mixrep.console.style_convert import _strip_eq_response_db

    return _strip_eq_response_db(strip, grid, RATE).clamp(min=-40.0)


@pytest.mark.slow
def test_round_trip_recovers_faders_pans_widths_exactly_and_eq_curves_within_1_db():
    rng = np.random.default_rng(3)
    grid = eq_fit_grid(RATE)
    for _ in range(2):
        style = sample_mix_style(MixStyleConfig(), rng, NAMES)
        console = console_from_style(style, NAMES, NAMES, sample_rate=RATE, processor_options=SHORT).console
        back = style_from_console(console, fit_steps=150)
        for name in NAMES:
            a, b = style.strips[name], back.style.strips[name]
            makeup = a.compressor.makeup_db if a.compressor is not None else 0.0
            assert b.fader_db == pytest.approx(a.fader_db + makeup, abs=1e-4), name  # make-up folds into the fader
            assert b.pan == pytest.approx(a.pan, abs=1e-5)
            assert (b.width is None) == (a.width is None or abs(a.width - 1.0) < 1e-4)
            if a.width is not None and b.width is not None:
                assert b.width == pytest.approx(a.width, abs=1e-5)
            if a.compressor is not None:  # no tracks: both ways against the same nominal input level
                assert b.compressor.threshold_db == pytest.approx(a.compressor.threshold_db, abs=1e-3)
                assert b.compressor.ratio == pytest.approx(a.compressor.ratio, rel=1e-3)
            error = torch.sqrt(((_strip_curve_db(a, grid) - _strip_curve_db(b, grid)) ** 2).mean())
            assert float(error) < 1.0, (name, float(error), a, b)
            assert back.report.eq_fit_error_db[name] < 1.0
        if style.master.eq:
            assert back.report.eq_fit_error_db["master"] < 0.5
        assert (back.style.master.compressor is None) == (style.master.compressor is None)


def test_a_curve_made_from_known_bands_is_fitted_back_within_half_a_db():
    frequencies = torch.arange(1024, dtype=torch.float64) * (RATE / 2047)
    cases = [
        [("low_shelf", 120.0, 4.0, 0.7071), ("peak", 900.0, -6.0, 2.0), ("peak", 3000.0, 5.0, 1.0),
         ("high_shelf", 5000.0, -3.0, 0.7071)],
        [("peak", 250.0, 8.0, 0.8), ("high_shelf", 4000.0, 6.0, 0.7071)],
        [("low_shelf", 200.0, -5.0, 0.7071), ("peak", 1500.0, -9.0, 3.0)],
    ]
    curves = []
    for bands in cases:
        db = torch.zeros_like(frequencies)
        for kind, hz, gain, q in bands:
            response = eq_band_response(kind, torch.tensor(hz, dtype=torch.float64), torch.tensor(gain, dtype=torch.float64),
                                        torch.tensor(q, dtype=torch.float64), frequencies, RATE)
            db = db + 20.0 * torch.log10(response.abs())
        curves.append(db)
    fit = fit_eq_curves(frequencies, torch.stack(curves), RATE, steps=150)
    assert max(fit.error_db) < 0.5, fit.error_db
    assert fit.highpass_hz == [None] * 3 and fit.lowpass_hz == [None] * 3


def test_what_does_not_convert_is_listed_with_its_reason():
    style = MixStyle({"drums": ChannelStrip(saturation_drive_db=12.0, width=0.5)},
                     master=MasterBus(limiter=LimiterSettings(drive_db=4.0, ceiling_db=-1.0, release_ms=100.0)))
    result = console_from_style(style, ["kick"], ["drums"], sample_rate=RATE, chain="eg", processor_options=SHORT)
    untranslated = {n.where: n.reason for n in result.report.untranslated}
    assert "saturation" in untranslated["strips.kick.saturation_drive_db"]
    assert "limiter" in untranslated["master.limiter"]
    assert "imager" in untranslated["strips.kick.width"]  # the chain "eg" has none
    assert "loudness" in untranslated["loudness_lufs"]  # no tracks: no measured level
    data = result.report.to_dict()
    assert {n["where"] for n in data["untranslated"]} == set(untranslated)
    # the other way: a noise gate has no style setting
    console = MixingConsole.from_tracks(["a"], chain="ng", group_chain="g", sample_rate=RATE)
    with torch.no_grad():
        console.params["noisegate"]["slope"].fill_(2.0)
        console.params["noisegate"][DRY_WET].fill_(10.0)
    back = style_from_console(console)
    assert [n.where for n in back.report.untranslated] == ["strips.a.noisegate"]


def test_compressor_threshold_is_made_absolute_on_the_tracks_and_read_back_relative():
    style = MixStyle({"a": ChannelStrip(eq=(EqBand("peak", 1000.0, 6.0, 1.0),),
                                        compressor=CompressorSettings(-6.0, 4.0, 5.0, 80.0, 2.0))})
    tracks = _noise_tracks(1, 1.0)
    result = console_from_style(style, ["a"], ["other"], tracks, sample_rate=RATE, processor_options=SHORT)
    console = result.console
    v = strip_nodes(console.graph)["track"][0]["compressor"]
    with torch.no_grad():
        into = console.render_graph(tracks, keep_nodes=True).node_outputs[v - 1].numpy()  # the EQ's output
        physical = console.processors["compressor"].to_physical(
            **{k: p for k, p in console.parameter_dict()["compressor"].items() if k != DRY_WET})
    assert float(physical["threshold_db"][0]) == pytest.approx(rms_db(into) - 6.0, abs=1e-3)
    assert float(physical["time_constant_ms"][0]) == pytest.approx(math.sqrt(5.0 * 80.0), rel=1e-3)
    assert not any("threshold" in n.where for n in result.report.notes)  # exact with the tracks
    back = style_from_console(console, tracks=tracks, fit_steps=100)
    assert back.style.strips["a"].compressor.threshold_db == pytest.approx(-6.0, abs=1e-3)
    assert back.style.loudness_lufs == pytest.approx(style.loudness_lufs, abs=0.5)  # the master gain reached it
    nominal = console_from_style(style, ["a"], ["other"], sample_rate=RATE, processor_options=SHORT)
    assert any("assumed input RMS" in n.reason for n in nominal.report.approximate)


def test_delay_taps_and_reverb_round_trip():
    style = MixStyle({"a": ChannelStrip(fader_db=-3.0, pan=0.3, delay_send_db=-10.0, reverb_send_db=-12.0),
                      "b": ChannelStrip(fader_db=2.0, pan=-0.5, reverb_send_db=-20.0)},
                     delay=DelayBus(0.25, 0.5), reverb=ReverbBus(_ROOM_GRID[4], _DAMPING_GRID[3], 0.8))
    console = console_from_style(style, ["a", "b"], ["drums", "bass"], sample_rate=RATE,
                                 processor_options=SHORT).console
    impulse = torch.zeros(2, 2, 2 * RATE)
    impulse[0, 0, 0] = 1.0
    with torch.no_grad():
        left = console.render(impulse)[0].numpy()
    dry = 10 ** (-3 / 20) * math.sqrt(2.0) * math.cos(1.3 * math.pi / 4)
    for k in range(1, 4):  # echo k at k x 250 ms, send x feedback^(k-1), over the reverb's tail
        lag = k * RATE // 4
        assert left[lag] - left[lag - 1: lag + 2:2].mean() == pytest.approx(dry * 10 ** (-10 / 20) * 0.5 ** (k - 1),
                                                                              rel=0.05)
    back = style_from_console(console)
    assert back.style.delay.delay_seconds == pytest.approx(0.25)
    assert back.style.delay.feedback == pytest.approx(0.5, abs=1e-4)
    assert back.style.reverb.room_size == pytest.approx(_ROOM_GRID[4])
    assert back.style.reverb.damping == pytest.approx(_DAMPING_GRID[3])
    assert back.style.reverb.width == pytest.approx(0.8, abs=0.05)
    assert back.style.strips["a"].delay_send_db == pytest.approx(-10.0, abs=1e-3)
    assert back.style.strips["a"].reverb_send_db == pytest.approx(-12.0, abs=0.1)
    assert back.style.strips["b"].reverb_send_db == pytest.approx(-20.0, abs=0.1)
    assert back.style.strips["b"].delay_send_db is None
    assert back.style.strips["a"].fader_db == pytest.approx(-3.0, abs=1e-4)


def test_bus_strips_fold_into_their_tracks():
    console = MixingConsole.from_tracks(["a", "b", "c"], {"ab": ["a", "b"], "c": ["c"]}, chain="eg",
                                        group_chain="eg", sample_rate=RATE)
    frequencies = console.processors["eq"].frequencies_hz().double()
    shelf = 20.0 * torch.log10(eq_band_response("low_shelf", torch.tensor(200.0, dtype=torch.float64),
                                                torch.tensor(6.0, dtype=torch.float64),
                                                torch.tensor(0.7071, dtype=torch.float64), frequencies, RATE).abs())
    with torch.no_grad():
        for p in console.params.values():
            p[DRY_WET].fill_(10.0)
        rows = strip_nodes(console.graph)["group"][0]
        ranks = console.graph.type_rank()
        console.params["gain_pan"]["log_gain"][ranks[rows["gain_pan"]]] = torch.tensor([3.0, 3.0]) * Fn.LOG10_OVER_20
        console.params["eq"]["log_magnitude"][ranks[rows["eq"]]] = (shelf * Fn.LOG10_OVER_20).float()
    back = style_from_console(console, fit_steps=150)
    strips = back.style.strips
    assert strips["a"].fader_db == pytest.approx(3.0, abs=1e-3) and strips["b"].fader_db == pytest.approx(3.0, abs=1e-3)
    assert strips["c"].fader_db == pytest.approx(0.0, abs=1e-3)
    assert strips["a"].eq and not strips["c"].eq
    assert back.style.master.eq == ()  # two buses: no master


def test_bad_input_is_a_clear_error():
    style = MixStyle({"drums": ChannelStrip()})
    with pytest.raises(ValueError, match="no strip for track 'piano' nor its stem class 'other'"):
        console_from_style(style, ["piano"], ["other"], sample_rate=RATE)
    with pytest.raises(ValueError, match="1 track names but 2 stem classes"):
        console_from_style(style, ["kick"], ["drums", "bass"], sample_rate=RATE)
    with pytest.raises(ValueError, match=r"expected tracks \(1, 2, samples\)"):
        console_from_style(style, ["kick"], ["drums"], torch.zeros(2, 2, 100), sample_rate=RATE)
    console = MixingConsole.from_tracks(["a", "b"], chain="g", group_chain="g", sample_rate=RATE)
    with pytest.raises(ValueError, match=r"track names \['b', 'a'\] are not the console's"):
        style_from_console(console, ["b", "a"])
    with pytest.raises(ValueError, match=r"expected tracks \(2, 2, samples\)"):
        style_from_console(console, tracks=torch.zeros(2, 1, 100))


def test_the_initial_console_reads_as_a_dry_strip_with_a_quiet_reverb():
    """The console's initial delay (0.7 % wet, taps at -40 dB: echoes near -83 dB) reads as no send; its
    reverb (0.7 % wet, mask at -40 dB) as a quiet one; the dry paths they leave (-0.058 dB each) as fader."""
    console = MixingConsole.from_tracks(["a"], chain="gdr", group_chain="g", sample_rate=RATE,
                                        processor_options=SHORT)
    back = style_from_console(console)
    strip = back.style.strips["a"]
    assert back.style.delay is None and strip.delay_send_db is None
    assert strip.reverb_send_db < -30.0 and back.style.reverb is not None
    dry = 1.0 - float(torch.sigmoid(torch.tensor(-5.0)))
    assert strip.fader_db == pytest.approx(2 * 20 * math.log10(dry), abs=1e-4)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("style") / "case"
    assert cli.main(["console", "make-case", "--out", str(out), "--tracks", "2", "--seconds", "1.2",
                     "--sample-rate", "8000", "--chain", "eg", "--seed", "1"]) == 0
    return out


def test_console_fit_writes_the_nearest_settings(case, tmp_path):
    out = tmp_path / "fit"
    assert cli.main(["console", "fit", "--stems", str(case / "stems"), "--mix", str(case / "mix.wav"),
                     "--groups", str(case / "groups.json"), "--out", str(out), "--steps", "2",
                     "--sample-rate", "8000", "--chain", "eg", "--group-chain", "g", "--crop-seconds", "0.75",
                     "--warmup-seconds", "0.25", "--no-progress", "--threads", "1", "--device", "cpu"]) == 0
    assert (out / "parameters.json").is_file()  # what it wrote before is still there
    data = json.loads(style_json_path(out / "parameters.json").read_text())
    settings = read_style_json(style_json_path(out / "parameters.json"))  # the one settings file, checked
    style = settings.style
    assert settings.source == "mixrep console fit" and settings.conversion == data["conversion"]
    console = MixingConsole.from_json(out / "parameters.json")
    assert sorted(style.strips) == sorted(console.track_names)
    assert set(data["conversion"]) == {"untranslated", "approximate", "eq_fit_error_db"}
    for name in console.track_names:
        strip = style.strips[name]
        assert math.isfinite(strip.fader_db) and -1.0 <= strip.pan <= 1.0
        assert data["conversion"]["eq_fit_error_db"][name] >= 0.0
