"""A console carried to another sample rate renders the same mix in the band both rates share."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from mixrep.console import MixingConsole, make_processors
from mixrep.console.graph import build_console
from mixrep.console.rate import console_at_rate, interpolate_curve

OPTIONS = {"eq": {"bins": 256}, "reverb": {"ir_seconds": 1.0}}


def smooth(values: torch.Tensor) -> torch.Tensor:
    """Curves along the last axis averaged over a sixth of their length (musical EQs are smooth)."""
    k = max(1, values.shape[-1] // 6)
    flat = values.reshape(-1, 1, values.shape[-1])
    padded = torch.nn.functional.pad(flat, (k // 2, k - 1 - k // 2), mode="replicate")
    return torch.nn.functional.avg_pool1d(padded, k, 1).reshape(values.shape)


def random_console(chain: str, seed: int = 1) -> MixingConsole:
    graph = build_console(["a", "b"], None, chain, None)
    processors = make_processors(22050, **OPTIONS)
    generator = torch.Generator().manual_seed(seed)
    params = {}
    for t, n in graph.type_counts().items():
        if t in processors:
            params[t] = processors[t].random_parameters(n, generator)
            for name in ("log_magnitude", "init_log_magnitude", "delta_log_magnitude"):
                if name in params[t]:
                    params[t][name] = smooth(params[t][name])
            params[t]["dry_wet_logit"] = torch.full((n,), 10.0)  # fully wet: every processor counts
    return MixingConsole(graph, processors, params)


def band_db(y: torch.Tensor, sample_rate: int, low: float, high: float) -> float:
    """Mean power of ``y`` in ``[low, high)`` Hz, dB (comparable across rates)."""
    power = torch.fft.rfft(y.double(), dim=-1).abs() ** 2 / y.shape[-1] ** 2
    freqs = torch.fft.rfftfreq(y.shape[-1], 1.0 / sample_rate)
    return float(10 * torch.log10(power[..., (freqs >= low) & (freqs < high)].sum()))


@pytest.mark.parametrize("rate", [44100, 96000])
@pytest.mark.parametrize("chain, tolerance_db", [("g", 0.05), ("s", 0.05), ("c", 0.3), ("n", 0.3), ("e", 0.5),
                                                 ("d", 1.2), ("r", 0.3), ("ecnsgdr", 1.0)])
def test_a_console_at_a_higher_rate_renders_what_it_rendered_at_22_05_khz(chain, tolerance_db, rate):
    """Band levels of white noise through a random console (smooth curves, fully wet) and through
    the same console carried to ``rate``, in bands under the 22.05 kHz resampler's roll-off."""
    console = random_console(chain)
    high = console_at_rate(console, rate, OPTIONS)
    assert high.sample_rate == rate and high.graph is console.graph
    x = torch.randn(2, 2, 4 * 22050, generator=torch.Generator().manual_seed(3)) * 0.1
    y = console.render_long(x)
    y_high = high.render_long(torchaudio.functional.resample(x, 22050, rate))
    for low, top in ((50, 500), (500, 3000), (3000, 8000), (20, 8000)):
        assert band_db(y_high, rate, low, top) == pytest.approx(band_db(y, 22050, low, top), abs=tolerance_db), (low, top)


def test_rate_free_parameters_are_copied_and_timed_ones_keep_their_physical_values():
    console = random_console("ecnsgdr")
    high = console_at_rate(console, 48000, OPTIONS)
    for t in ("gain_pan", "imager"):
        for name, value in console.params[t].items():
            torch.testing.assert_close(high.params[t][name], value)
    for t in ("compressor", "noisegate", "delay"):
        old = console.processors[t].to_physical(**{k: v for k, v in console.params[t].items() if k != "dry_wet_logit"})
        new = high.processors[t].to_physical(**{k: v for k, v in high.params[t].items() if k != "dry_wet_logit"})
        for name in ("time_constant_ms", "threshold_db", "ratio", "knee_db") if t != "delay" else ():
            torch.testing.assert_close(new[name], old[name], rtol=1e-3, atol=1e-3)
        if t == "delay":  # tap times within a sample at the old rate
            assert float((new["delay_ms"] - old["delay_ms"]).abs().max()) <= 1000 / 22050
    assert high.processors["eq"].bins == round(256 * 48000 / 22050)  # the same spacing in Hz
    assert console_at_rate(console, 22050, OPTIONS) is console


def test_curves_are_interpolated_and_held_above_the_old_range():
    values = torch.tensor([[0.0, -6.0, -12.0]])
    out = interpolate_curve(values, torch.tensor([0.0, 1000.0, 2000.0]), torch.tensor([500.0, 2000.0, 4000.0]))
    torch.testing.assert_close(out, torch.tensor([[-3.0, -12.0, -12.0]]))
