"""The same console at another sample rate: parameters carried over in physical units.

A head predicts, and balance matching and refinement tune, a console at the model's rate (22.05 kHz);
``mixrep mix`` renders the song at the tracks' own rate so the mix keeps its full band.
:func:`console_at_rate` rebuilds every processor at the new rate and converts each parameter through
its physical meaning (the processors' ``to_physical`` / ``from_physical``):

* faders (``gain_pan``) and the stereo imager are rate-free: copied;
* compressor and gate: time constant (ms), threshold, ratio and knee (dB) kept; the smoother's
  ``z_alpha`` is recomputed for the new rate;
* EQ: the curve is defined on ``bins`` points from 0 Hz to the old Nyquist. The new EQ gets as
  many bins as keep the same spacing in Hz (the same FIR length in seconds, so the same frequency
  resolution), and its curve is the old one interpolated in dB; above the old Nyquist the curve
  **holds its top value** (a flat continuation). Holding, rather than returning to 0 dB, keeps the
  curve continuous: a treble cut or boost that reaches the old Nyquist continues into the new top
  octave as a shelf would, instead of ending in a step that a 2047-tap FIR renders as a narrow
  resonance at the old Nyquist and lets the unprocessed top octave through at full level;
* multitap delay: tap times (ms) kept, slots of the same length in ms; each tap's EQ curve
  resampled like the EQ's;
* reverb: the STFT frame and hop keep their length in seconds (``n_fft`` and ``hop`` scaled), the
  IR its length in seconds; the mask's initial level and RT60 per frequency are interpolated like
  the EQ's curve (held above the old Nyquist). The noise is carried over
  (:func:`carry_reverb_noise`: the old noise resampled, plus fresh noise of the same spectral
  density above the old Nyquist), so the reverb keeps its fine structure, not just its level. The
  same IR waveform sampled ``r`` times as densely has ``r`` times the gain (a convolution sums ``r``
  times as many taps), so the initial level is lowered by ``20 log10(r)`` dB;
* dry/wet logits are rate-free: copied.

Shape:
    parameters ``{type: {name: (nodes, *size)}}`` in, the same names with the new sizes out.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio
from torch import Tensor

from mixrep.console.console import MixingConsole
from mixrep.console.processors import DRY_WET, Equalizer, MultitapDelay, Processor, Reverb, _Dynamics, make_processors


def interpolate_curve(values: Tensor, old_hz: Tensor, new_hz: Tensor) -> Tensor:
    """A curve ``(..., old_bins)`` sampled at ``old_hz`` resampled at ``new_hz`` ``(new_bins,)``:
    linear in Hz, the end values held beyond the old range.

    Shape:
        ``(..., old_bins)`` -> ``(..., new_bins)``.
    """
    flat = values.detach().double().reshape(-1, values.shape[-1]).cpu().numpy()
    old, new = old_hz.double().cpu().numpy(), new_hz.double().cpu().numpy()
    out = np.stack([np.interp(new, old, row) for row in flat]) if len(flat) else np.zeros((0, len(new)))
    return torch.from_numpy(out).to(values.dtype).reshape(*values.shape[:-1], len(new))


def _fir_hz(bins: int, sample_rate: int) -> Tensor:
    """Bin frequencies of a zero-phase FIR of ``bins`` log-magnitudes (``k * sr / (2 bins - 1)``)."""
    return torch.arange(bins) * (sample_rate / (2 * bins - 1))


def _scaled_bins(bins: int, ratio: float) -> int:
    return max(2, int(round(bins * ratio)))


def processor_options_at_rate(processors: dict[str, Processor], ratio: float) -> dict[str, dict]:
    """Constructor options that give every processor the same behaviour in seconds and Hz at
    ``ratio`` times its rate (see the module docstring)."""
    options: dict[str, dict] = {}
    for name, p in processors.items():
        if isinstance(p, Equalizer):
            options[name] = {"bins": _scaled_bins(p.bins, ratio)}
        elif isinstance(p, _Dynamics):
            options[name] = {"min_time_constant_ms": p.min_time_constant_ms,
                             "max_time_constant_ms": p.max_time_constant_ms}
        elif isinstance(p, MultitapDelay):
            options[name] = {"taps": p.taps, "slot_ms": p.slot_samples * 1000.0 / p.sample_rate,
                             "fir_bins": _scaled_bins(p.fir_bins, ratio), "gamma": p.gamma,
                             "surrogate_gradient": p.surrogate_gradient}
        elif isinstance(p, Reverb):
            n_fft = 2 * max(2, int(round(p.n_fft * ratio / 2)))
            options[name] = {"ir_seconds": p.ir_samples / p.sample_rate, "n_fft": n_fft,
                             "hop_length": max(1, int(round(n_fft * p.hop_length / p.n_fft)))}
    return options


@torch.no_grad()
def carry_reverb_noise(old: Reverb, new: Reverb, seed: int = 1) -> None:
    """Give ``new`` (another rate) ``old``'s noise: recovered from ``old``'s STFT frames, resampled to
    ``new``'s rate, with fresh uniform noise of the same spectral density above ``old``'s Nyquist
    when ``new`` runs faster; stored as ``new``'s STFT frames."""
    noise = torch.istft(old.noise_frames.transpose(-1, -2).cpu(), old.n_fft, old.hop_length,
                        window=torch.hann_window(old.n_fft), length=old.ir_samples)
    noise = torchaudio.functional.resample(noise, old.sample_rate, new.sample_rate)
    noise = torch.nn.functional.pad(noise, (0, max(0, new.ir_samples - noise.shape[-1])))[..., : new.ir_samples]
    if new.sample_rate > old.sample_rate:
        generator = torch.Generator().manual_seed(seed)
        fresh = (2.0 * torch.rand(2, new.ir_samples, generator=generator) - 1.0) * math.sqrt(new.sample_rate / old.sample_rate)
        spectrum = torch.fft.rfft(fresh)
        spectrum[..., torch.fft.rfftfreq(new.ir_samples, 1.0 / new.sample_rate) < old.sample_rate / 2] = 0
        noise = noise + torch.fft.irfft(spectrum, new.ir_samples)
    stft = torch.stft(noise, new.n_fft, new.hop_length, window=torch.hann_window(new.n_fft), return_complex=True)
    new.noise_frames = stft.transpose(-1, -2).contiguous().to(new.noise_frames.device)


def convert_parameters(old: Processor, new: Processor, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Raw parameters ``{name: (nodes, *size)}`` of ``old`` -> the same settings for ``new`` (same
    type, another rate), dry/wet logit included."""
    raw = {k: v.detach().cpu().float() for k, v in params.items() if k != DRY_WET}
    out: dict[str, Tensor]
    if isinstance(old, Equalizer):
        gain_db = old.to_physical(**raw)["gain_db"]
        out = new.from_physical({"gain_db": interpolate_curve(gain_db, old.frequencies_hz(), new.frequencies_hz())})
    elif isinstance(old, _Dynamics):
        out = new.from_physical(old.to_physical(**raw))
    elif isinstance(old, MultitapDelay):
        physical = old.to_physical(**raw)
        physical["tap_eq_db"] = interpolate_curve(physical["tap_eq_db"], _fir_hz(old.fir_bins, old.sample_rate),
                                                  _fir_hz(new.fir_bins, new.sample_rate))
        out = new.from_physical(physical)
    elif isinstance(old, Reverb):
        physical = old.to_physical(**raw)
        density_db = 20.0 * math.log10(new.sample_rate / old.sample_rate)
        out = new.from_physical({
            "initial_db": interpolate_curve(physical["initial_db"], old.frequencies_hz(), new.frequencies_hz()) - density_db,
            "rt60_seconds": interpolate_curve(physical["rt60_seconds"], old.frequencies_hz(), new.frequencies_hz()),
        })
    else:  # gain_pan, imager: no rate in their parameters
        out = dict(raw)
    out = {k: v.float() for k, v in new.constrain(out).items()}
    if DRY_WET in params:
        out[DRY_WET] = params[DRY_WET].detach().cpu().float()
    return out


@torch.no_grad()
def console_at_rate(console: MixingConsole, sample_rate: int, processor_options: dict[str, dict] | None = None
                    ) -> MixingConsole:
    """``console`` rebuilt at ``sample_rate``: same graph, parameters carried over in physical units.

    Args:
        processor_options: the console's own constructor options (e.g. a reverb ``seed``); the
            rate-dependent ones are derived from its processors.

    Returns:
        a new console on the CPU (``console`` itself when the rate is already ``sample_rate``).
    """
    if sample_rate == console.sample_rate:
        return console
    old = dict(console.processors)
    ratio = sample_rate / console.sample_rate
    options = {t: dict((processor_options or {}).get(t, {})) for t in old}
    for t, derived in processor_options_at_rate(old, ratio).items():
        options[t].update(derived)
    new = make_processors(sample_rate, **{t: o for t, o in options.items() if o})
    for t, processor in new.items():
        if isinstance(processor, Reverb):
            carry_reverb_noise(old[t], processor)
    params = {t: convert_parameters(old[t], new[t], p) for t, p in console.parameter_dict().items()}
    return MixingConsole(console.graph, new, params, console.schedule)
