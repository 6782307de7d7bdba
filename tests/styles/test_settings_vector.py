"""The settings vector: what of a mix style a decoder is trained to read, per stem class and for the master.

EQ readings are checked against the closed-form response of the biquad shelf (R. Bristow-Johnson,
"Cookbook formulae for audio EQ biquad filter coefficients"), the filter pedalboard's shelves implement.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from mixrep.constants import STEMS
from mixrep.styles.mix_style import (
    ChannelStrip,
    CompressorSettings,
    DelayBus,
    EqBand,
    LimiterSettings,
    MasterBus,
    MixStyle,
    ReverbBus,
)
from mixrep.styles.settings_vector import (
    EQ_FREQUENCIES_HZ,
    EQ_SAMPLE_RATE,
    INDEX,
    NUM_SETTINGS,
    SETTINGS,
    compressor_reduction_db,
    denormalise,
    presence_columns,
    relative_mask,
    settings_vector,
    value_columns,
)


def physical(values: np.ndarray, name: str) -> float:
    return denormalise(SETTINGS[INDEX[name]], float(values[INDEX[name]]))


def style_of(strips: dict[str, ChannelStrip], **buses) -> MixStyle:
    return MixStyle({stem: strips.get(stem, ChannelStrip()) for stem in STEMS} | {
        name: strip for name, strip in strips.items() if name not in STEMS}, **buses)


def rbj_low_shelf_db(cutoff_hz: float, gain_db: float, q: float, frequencies_hz, sample_rate: int) -> np.ndarray:
    """The cookbook low shelf's magnitude response in dB (the formula, not the implementation under test)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * cutoff_hz / sample_rate
    alpha, cos = math.sin(w0) / (2 * q), math.cos(w0)
    b = [a * ((a + 1) - (a - 1) * cos + 2 * math.sqrt(a) * alpha), 2 * a * ((a - 1) - (a + 1) * cos),
         a * ((a + 1) - (a - 1) * cos - 2 * math.sqrt(a) * alpha)]
    den = [(a + 1) + (a - 1) * cos + 2 * math.sqrt(a) * alpha, -2 * ((a - 1) + (a + 1) * cos),
           (a + 1) + (a - 1) * cos - 2 * math.sqrt(a) * alpha]
    _, response = signal.freqz(b, den, worN=np.asarray(frequencies_hz), fs=sample_rate)
    return 20 * np.log10(np.abs(response))


# ----------------------------------------------------------------------------- EQ curve


@pytest.mark.parametrize("cutoff_hz", [100.0, 300.0])
def test_a_bass_low_shelf_reads_as_its_curve_on_the_bass_strip_only(cutoff_hz):
    shelf = EqBand("low_shelf", cutoff_hz, 10.0)
    values, mask = settings_vector(style_of({"bass": ChannelStrip(eq=(shelf,))}), STEMS, STEMS)
    expected = rbj_low_shelf_db(cutoff_hz, 10.0, shelf.q, EQ_FREQUENCIES_HZ, EQ_SAMPLE_RATE)
    read = np.array([physical(values, f"bass.eq_{f:g}hz_db") for f in EQ_FREQUENCIES_HZ])
    np.testing.assert_allclose(read, expected, atol=0.1)
    # A shelf's corner is where half its gain is reached: at 60 Hz a 100 Hz shelf gives 8.7 dB of its 10,
    # a 300 Hz shelf the full 10 dB (within 1 dB).
    assert 8.0 < read[0] < 10.0 if cutoff_hz == 100.0 else abs(read[0] - 10.0) < 1.0
    assert abs(read[-1]) < 0.05  # 6 kHz: untouched
    for stem in ("drums", "other", "vocals"):
        for f in EQ_FREQUENCIES_HZ:
            name = f"{stem}.eq_{f:g}hz_db"
            assert mask[INDEX[name]] == 1 and physical(values, name) == pytest.approx(0.0, abs=1e-6), name


def test_a_cut_reads_negative_and_a_mean_over_a_stems_tracks():
    cut = ChannelStrip(eq=(EqBand("low_shelf", 300.0, -10.0),))
    values, _ = settings_vector(style_of({"bass": cut}), STEMS, STEMS)
    assert physical(values, "bass.eq_60hz_db") == pytest.approx(-10.0, abs=1.0)
    # Two "other" tracks, one cut by 10 dB and one flat: the stem class reads the mean curve.
    names, stems = ("drums", "bass", "keys", "gtr"), ("drums", "bass", "other", "other")
    values, _ = settings_vector(style_of({"keys": cut}), names, stems)
    assert physical(values, "other.eq_60hz_db") == pytest.approx(-10.0 / 2, abs=0.5)


# ----------------------------------------------------------------------------- balance and masks


def test_absent_stems_are_masked_and_faders_centre_over_the_present_ones():
    strips = {"drums": ChannelStrip(fader_db=3.0), "bass": ChannelStrip(fader_db=-1.0),
              "other": ChannelStrip(fader_db=4.0), "vocals": ChannelStrip(fader_db=-30.0)}
    names = stems = ("drums", "bass", "other")  # a clip without vocals
    values, mask = settings_vector(style_of(strips, reverb=ReverbBus(0.5, 0.5, 1.0)), names, stems)
    vocals = [i for i, s in enumerate(SETTINGS) if s.name.startswith("vocals.")]
    strip_entries = sum(not s.name.startswith(("master.", "bus.")) for s in SETTINGS) // len(STEMS)
    assert len(vocals) == strip_entries  # every entry of the class's strip
    assert mask[vocals].sum() == 0 and values[vocals].sum() == 0
    faders = {stem: physical(values, f"{stem}.fader_db") for stem in names}
    # the mean of (3, -1, 4) is 2: the vocal fader (-30 dB) must not enter it
    assert faders == pytest.approx({"drums": 1.0, "bass": -3.0, "other": 2.0}, abs=1e-5)
    assert sum(faders.values()) == pytest.approx(0.0, abs=1e-5)
    # the master and bus entries do not depend on which stems are present
    assert mask[INDEX["master.limiter"]] == 1 and mask[INDEX["bus.reverb"]] == 1


def test_a_level_change_of_every_fader_changes_nothing():
    base = {stem: ChannelStrip(fader_db=float(i)) for i, stem in enumerate(STEMS)}
    louder = {stem: ChannelStrip(fader_db=float(i) + 6.0) for i, stem in enumerate(STEMS)}
    a, _ = settings_vector(style_of(base), STEMS, STEMS)
    b, _ = settings_vector(style_of(louder), STEMS, STEMS)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_presence_is_the_share_of_a_stems_tracks_using_a_processor():
    squash = CompressorSettings(threshold_db=-12.0, ratio=4.0, attack_ms=5.0, release_ms=100.0)
    names, stems = ("kick", "snare", "bass", "keys", "lead"), ("drums", "drums", "bass", "other", "vocals")
    values, mask = settings_vector(style_of({"kick": ChannelStrip(compressor=squash)}), names, stems)
    assert values[INDEX["drums.compressor"]] == pytest.approx(0.5)
    assert values[INDEX["bass.compressor"]] == 0 and mask[INDEX["bass.compressor"]] == 1
    # the reduction is the compressed track's own, not diluted by the uncompressed one
    assert physical(values, "drums.compressor_reduction_db") == pytest.approx(9.0, abs=1e-5)
    # a value under a presence entry is undefined where no track uses the processor
    assert mask[INDEX["drums.compressor_reduction_db"]] == 1 and mask[INDEX["bass.compressor_reduction_db"]] == 0
    assert mask[INDEX["drums.saturation_drive_db"]] == 0 and mask[INDEX["drums.highpass_hz"]] == 0


def test_sends_are_masked_where_the_style_has_no_bus():
    sends = ChannelStrip(delay_send_db=-12.0, reverb_send_db=-10.0)
    strips = {stem: sends for stem in STEMS}
    names = ("delay_send", "delay_send_db", "reverb_send", "reverb_send_db")
    values, mask = settings_vector(style_of(strips), STEMS, STEMS)
    for stem in STEMS:
        assert all(mask[INDEX[f"{stem}.{n}"]] == 0 for n in names)
    assert mask[INDEX["bus.reverb"]] == 1 and values[INDEX["bus.reverb"]] == 0
    assert mask[INDEX["bus.reverb_room_size"]] == 0 and mask[INDEX["bus.delay_seconds"]] == 0

    with_buses = style_of(strips, delay=DelayBus(0.25, 0.3), reverb=ReverbBus(0.8, 0.4, 1.0))
    values, mask = settings_vector(with_buses, STEMS, STEMS)
    for stem in STEMS:
        assert all(mask[INDEX[f"{stem}.{n}"]] == 1 for n in names)
        assert values[INDEX[f"{stem}.reverb_send"]] == 1
        assert physical(values, f"{stem}.reverb_send_db") == pytest.approx(-10.0, abs=1e-5)
        assert physical(values, f"{stem}.delay_send_db") == pytest.approx(-12.0, abs=1e-5)
    assert physical(values, "bus.delay_seconds") == pytest.approx(0.25, rel=1e-5)
    assert physical(values, "bus.reverb_room_size") == pytest.approx(0.8, abs=1e-5)


def test_a_bus_without_sends_is_present_with_the_sends_absent():
    values, mask = settings_vector(style_of({}, reverb=ReverbBus(0.5, 0.5, 1.0)), STEMS, STEMS)
    assert values[INDEX["bus.reverb"]] == 1
    assert mask[INDEX["bass.reverb_send"]] == 1 and values[INDEX["bass.reverb_send"]] == 0
    assert mask[INDEX["bass.reverb_send_db"]] == 0


# ----------------------------------------------------------------------------- dynamics, master, units


@pytest.mark.parametrize(("threshold_db", "ratio", "reduction_db"), [
    (-12.0, 4.0, 9.0),   # 12 dB over the threshold, 3/4 of it taken away
    (-6.0, 2.0, 3.0),
    (-10.0, 1.0, 0.0),   # ratio 1: no compression
    (3.0, 8.0, 0.0),     # threshold above the RMS: nothing at the RMS level
])
def test_compressor_reduction_is_the_static_curve_at_the_rms_level(threshold_db, ratio, reduction_db):
    settings = CompressorSettings(threshold_db=threshold_db, ratio=ratio, attack_ms=5.0, release_ms=50.0)
    assert compressor_reduction_db(settings) == pytest.approx(reduction_db)


def test_master_settings_read_back_in_their_units():
    master = MasterBus(eq=(EqBand("low_shelf", 300.0, 3.0),),
                       compressor=CompressorSettings(threshold_db=-8.0, ratio=2.0, attack_ms=10.0, release_ms=100.0),
                       limiter=LimiterSettings(drive_db=6.0, ceiling_db=-1.0, release_ms=50.0))
    values, mask = settings_vector(style_of({}, master=master), STEMS, STEMS)
    assert physical(values, "master.eq_60hz_db") == pytest.approx(3.0, abs=0.3)
    assert physical(values, "master.eq_6000hz_db") == pytest.approx(0.0, abs=0.05)
    assert values[INDEX["master.compressor"]] == 1 and values[INDEX["master.limiter"]] == 1
    assert physical(values, "master.compressor_reduction_db") == pytest.approx(4.0, abs=1e-5)
    assert physical(values, "master.limiter_drive_db") == pytest.approx(6.0, abs=1e-5)
    bare, bare_mask = settings_vector(style_of({}), STEMS, STEMS)
    assert bare[INDEX["master.limiter"]] == 0 and bare_mask[INDEX["master.limiter_drive_db"]] == 0


def test_cut_offs_are_octaves_and_round_trip_in_hz():
    strip = ChannelStrip(highpass_hz=140.0, lowpass_hz=4750.0, pan=-0.5, width=1.4, saturation_drive_db=12.0)
    values, mask = settings_vector(style_of({"other": strip}), STEMS, STEMS)
    assert physical(values, "other.highpass_hz") == pytest.approx(140.0, rel=1e-4)
    # 140 Hz is one octave above the 70 Hz centre: one scale unit in the normalised vector
    assert values[INDEX["other.highpass_hz"]] == pytest.approx(1.0, abs=1e-5)
    assert physical(values, "other.lowpass_hz") == pytest.approx(4750.0, rel=1e-4)
    assert physical(values, "other.pan") == pytest.approx(-0.5, abs=1e-6)
    assert physical(values, "other.width") == pytest.approx(1.4, abs=1e-6)
    assert physical(values, "other.saturation_drive_db") == pytest.approx(12.0, abs=1e-5)
    assert physical(values, "drums.width") == pytest.approx(1.0)  # a strip that leaves width alone


def test_layout_and_dtype():
    values, mask = settings_vector(style_of({}), STEMS, STEMS)
    assert values.shape == mask.shape == (NUM_SETTINGS,) and values.dtype == mask.dtype == np.float32
    assert len(INDEX) == NUM_SETTINGS  # names are unique
    assert sorted([*presence_columns(), *value_columns()]) == list(range(NUM_SETTINGS))
    assert all(SETTINGS[INDEX[s.presence]].kind == "presence" for s in SETTINGS if s.presence)
    both = relative_mask(mask, mask)
    assert both[presence_columns()].sum() == 0 and (both[value_columns()] == mask[value_columns()]).all()


# ----------------------------------------------------------------------------- refusals


def test_mismatched_or_unknown_tracks_are_refused():
    style = style_of({})
    with pytest.raises(ValueError, match="3 track names but 2 stem classes"):
        settings_vector(style, ("drums", "bass", "keys"), ("drums", "bass"))
    with pytest.raises(ValueError, match="unknown stem classes \\['guitar'\\]"):
        settings_vector(style, ("drums", "gtr"), ("drums", "guitar"))
    with pytest.raises(ValueError, match="no strip for track 'gtr'"):
        settings_vector(MixStyle({"drums": ChannelStrip()}), ("drums", "gtr"), ("drums", "other"))
