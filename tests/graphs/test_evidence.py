"""Graph evidence: each processor leaves the trace the analysis is built to find, and nothing else does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mixrep.graphs.evidence import EVIDENCE_NAMES, analysis_sizes, strip_evidence

RATE = 16000
SECONDS = 3.0


def noise_track(seed: int, side: float = 0.3) -> torch.Tensor:
    """Pulsed pink-ish noise with a stereo side component: ``(2, samples)``."""
    gen = torch.Generator().manual_seed(seed)
    n = int(SECONDS * RATE)
    white = torch.randn(2, n, generator=gen)
    mid = torch.cumsum(white[0], 0)
    mid = mid - torch.nn.functional.avg_pool1d(mid[None, None], 401, 1, 200, count_include_pad=False)[0, 0]
    mid = mid / mid.std() + 0.5 * white[0]
    t = torch.arange(n) / RATE
    envelope = 0.2 + 0.8 * (torch.sin(2 * math.pi * 2.0 * t) > 0).float() * torch.exp(-((t * 2.0) % 1.0) * 6)
    mid, other = mid * envelope, white[1] * envelope
    x = torch.stack([mid + side * other, mid - side * other]) * 0.1
    return x


def own(track: torch.Tensor, bus: torch.Tensor, name: str) -> float:
    """One track in one bus: the named feature of its row."""
    evidence = strip_evidence(track[None], [0], bus[None], RATE)
    return float(evidence.tracks[0, EVIDENCE_NAMES.index(name)])


@pytest.fixture(scope="module")
def track() -> torch.Tensor:
    return noise_track(0)


def test_rows_shapes_and_bus_presence():
    tracks = torch.stack([noise_track(0), noise_track(1), noise_track(2)])
    buses = torch.stack([tracks[0] + tracks[1], torch.zeros_like(tracks[0]), tracks[2]])
    evidence = strip_evidence(tracks, [0, 0, 2], buses, RATE)
    assert evidence.tracks.shape == (3, len(EVIDENCE_NAMES)) and evidence.buses.shape == (3, len(EVIDENCE_NAMES))
    assert evidence.bus_present.tolist() == [True, False, True]
    assert not evidence.buses[1].any() and np.isfinite(evidence.tracks).all()
    assert evidence.tracks[:, EVIDENCE_NAMES.index("is_track")].tolist() == [1, 1, 1]
    assert evidence.buses[0, EVIDENCE_NAMES.index("bus_tracks")] == 2
    # a bus row holds no track's own analysis
    assert not evidence.buses[0, : EVIDENCE_NAMES.index("bus_eq_spread_db")].any()


def test_a_plain_gain_leaves_no_trace(track):
    bus = 0.3 * track
    assert own(track, bus, "eq_spread_db") < 0.05
    assert abs(own(track, bus, "log_width")) < 0.01
    assert abs(own(track, bus, "gain_slope")) < 0.01
    assert own(track, bus, "tail_ratio_db") < -30


def test_eq_shows_as_band_gain_spread(track):
    n_fft = 1024
    freqs = torch.fft.rfftfreq(n_fft, 1 / RATE)
    boost = torch.where((freqs > 1000) & (freqs < 3000), 10 ** (9 / 20), 1.0)  # +9 dB in 1-3 kHz
    fir = torch.fft.fftshift(torch.fft.irfft(boost, n_fft))
    bus = torch.nn.functional.conv1d(track[:, None], fir.flip(0)[None, None], padding=n_fft // 2)
    bus = bus[:, 0, : track.shape[-1]]
    assert own(track, bus, "eq_spread_db") > 2.0 > own(track, 0.5 * track, "eq_spread_db") + 1.5


def test_echo_shows_as_energy_at_its_lag(track):
    _, hop, _ = analysis_sizes(RATE)
    lag = int(0.3 * RATE)
    bus = track.clone()
    bus[:, lag:] += 0.5 * track[:, :-lag]
    assert own(track, bus, "tail_ratio_db") > own(track, track, "tail_ratio_db") + 15
    assert own(track, bus, "tail_lag_frames") == pytest.approx(lag / hop, abs=3)


def test_an_echo_that_differs_left_and_right_shows_in_the_side_channel():
    mono = noise_track(3, side=0.0)
    same, ping_pong = mono.clone(), mono.clone()
    for channel, lag in enumerate((int(0.2 * RATE), int(0.3 * RATE))):
        same[channel, int(0.25 * RATE):] += 0.5 * mono[channel, : -int(0.25 * RATE)]
        ping_pong[channel, lag:] += 0.5 * mono[channel, :-lag]
    assert own(mono, ping_pong, "tail_ratio_db") == pytest.approx(own(mono, same, "tail_ratio_db"), abs=3)
    assert own(mono, ping_pong, "side_tail_ratio_db") > own(mono, same, "side_tail_ratio_db") + 10


def test_compression_shows_as_gain_falling_with_level(track):
    # a static 2:1 compressor above -30 dBFS on a 20 ms mean-square envelope: -1 dB per 2 dB over
    power = torch.nn.functional.avg_pool1d(track.pow(2).mean(0)[None, None], 321, 1, 160, count_include_pad=False)
    gain_db = -0.5 * torch.relu(10 * torch.log10(power[0, 0] + 1e-10) + 30.0)
    squashed = track * 10 ** (gain_db / 20)
    assert own(track, squashed, "gain_slope") < -0.2
    assert own(track, squashed, "gain_level_corr") < -0.5
    assert abs(own(track, 2.0 * track, "gain_slope")) < 0.01


def test_width_change_shows_as_side_over_mid_gain(track):
    mid, side = (track[0] + track[1]) / 2, (track[0] - track[1]) / 2
    wide = torch.stack([mid + 2 * side, mid - 2 * side])
    assert own(track, wide, "log_width") == pytest.approx(math.log(2), abs=0.05)
    # a pan scales left and right, not mid against side: no width change
    assert abs(own(track, track * torch.tensor([[1.2], [0.8]]), "log_width")) < 0.1


def test_silent_tracks_and_bad_input():
    tracks = torch.stack([noise_track(0), torch.zeros(2, int(SECONDS * RATE))])
    evidence = strip_evidence(tracks, [0, 0], tracks.sum(0, keepdim=True), RATE)
    assert np.isfinite(evidence.tracks).all()
    with pytest.raises(ValueError, match="too short"):
        strip_evidence(tracks[..., :1000], [0, 0], tracks[:1, :, :1000], RATE)
    with pytest.raises(ValueError, match="same length"):
        strip_evidence(tracks, [0, 0], tracks[:1, :, :-5], RATE)
    with pytest.raises(ValueError, match="groups must name a bus"):
        strip_evidence(tracks, [0, 1], tracks[:1], RATE)
    bad = tracks.clone()
    bad[0, 0, 100] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        strip_evidence(bad, [0, 0], bad.sum(0, keepdim=True), RATE)


def test_a_songs_own_tracks_explain_its_mix_and_another_songs_do_not():
    from mixrep.console import MusicalPrior
    from mixrep.graphs.cases import make_case, synthetic_tracks
    from mixrep.graphs.evidence import explained_share

    cases = []
    for seed in range(3):  # full consoles of the musical prior: EQ, dynamics, width, echoes, reverb
        names, groups, stems = synthetic_tracks(4, 3.0, 8000, seed)
        cases.append(make_case(stems, names, groups, 8000, seed=seed, prior=MusicalPrior()))
    for i, case in enumerate(cases):
        assert explained_share(case.stems, case.mix, 8000) > 0.8
        assert explained_share(case.stems, cases[(i + 1) % 3].mix, 8000) < 0.25
    assert explained_share(cases[0].stems, 0.5 * cases[0].stems.sum(0), 8000) > 0.999  # a plain gain: all of it
