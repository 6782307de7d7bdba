"""Processor modules: thin ``nn.Module`` wrappers over :mod:`mixrep.console.functional`.

A processor holds no learnable parameters, only fixed buffers (the reverb's noise) and
hyperparameters (sample rate, lengths). Its parameters arrive as keyword tensors batched over the
nodes it processes at once, as in GRAFX (seed document 002)::

    y = processor(x, **params)      # x: (nodes, 2, samples), params[name]: (nodes, *size)

Every processor declares

* ``parameter_size()``: ``{name: shape}`` without the node axis (always tuples);
* ``parameter_specs()``: the same names with an initial value and a raw range ``(low, high)``
  that a prediction head can map onto (e.g. ``low + (high - low) * sigmoid(out)``);
* ``to_physical(**params)`` / ``from_physical(physical)``: raw <-> physical units (dB, ms, Hz,
  ratio, seconds), the one documented place where each mapping lives (functional ``*_physical``);
* ``history_samples`` / ``lookahead_samples``: how far into the past/future its output depends on
  its input (used to render long signals in exact chunks).

Shape:
    ``(nodes, channels=2, samples)`` in and out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mixrep.console import functional as Fn
from mixrep.constants import SAMPLE_RATE


@dataclass(frozen=True)
class ParamSpec:
    """One raw parameter of a processor.

    Attributes:
        shape: size without the node axis.
        init: initial raw value (the console's starting point, close to "neutral").
        low, high: raw range a prediction head should cover.
    """

    shape: tuple[int, ...]
    init: float
    low: float
    high: float


class Processor(nn.Module):
    """Base class: the parameter protocol shared by every processor."""

    type_name: str = ""
    chain_letter: str = ""
    regularise_gain_staging: bool = False
    """True for the LTI processors (EQ, delay, reverb) the gain-staging loss applies to."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        raise NotImplementedError

    def parameter_size(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the raw parameters, without the node axis."""
        return {name: spec.shape for name, spec in self.parameter_specs().items()}

    def init_parameters(
        self, nodes: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> dict[str, Tensor]:
        """Initial raw parameters for ``nodes`` nodes: ``{name: (nodes, *shape)}``."""
        return {
            name: torch.full((nodes, *spec.shape), spec.init, device=device, dtype=dtype)
            for name, spec in self.parameter_specs().items()
        }

    def random_parameters(
        self, nodes: int, generator: torch.Generator | None = None, scale: float = 1.0,
        device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
    ) -> dict[str, Tensor]:
        """Raw parameters drawn uniformly inside ``init +- scale * (high - low) / 4``, clipped to
        the range (for tests and synthetic targets)."""
        out = {}
        for name, spec in self.parameter_specs().items():
            u = torch.rand((nodes, *spec.shape), generator=generator, dtype=torch.float64)
            value = spec.init + (u - 0.5) * 0.5 * scale * (spec.high - spec.low)
            out[name] = value.clamp(spec.low, spec.high).to(device=device, dtype=dtype)
        return out

    def check_parameters(self, x: Tensor, params: dict[str, Tensor]) -> None:
        if x.ndim != 3 or x.shape[1] != 2:
            raise ValueError(f"{self.type_name}: expected (nodes, 2, samples) audio, got {tuple(x.shape)}")
        sizes = self.parameter_size()
        if set(params) != set(sizes):
            raise ValueError(f"{self.type_name}: expected parameters {sorted(sizes)}, got {sorted(params)}")
        for name, shape in sizes.items():
            if tuple(params[name].shape) != (x.shape[0], *shape):
                raise ValueError(
                    f"{self.type_name}.{name}: expected shape {(x.shape[0], *shape)}, "
                    f"got {tuple(params[name].shape)}"
                )

    def to_physical(self, **params: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    @property
    def history_samples(self) -> int:
        return 0

    @property
    def lookahead_samples(self) -> int:
        return 0


class GainPan(Processor):
    """Gain/panning: ``y = exp(log_gain) * x`` per channel (seed B.1). Raw: ``log_gain (2,)``."""

    type_name, chain_letter = "gain_pan", "g"

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {"log_gain": ParamSpec((2,), 0.0, -6.0, 3.0)}  # about -52 .. +26 dB

    def forward(self, x: Tensor, log_gain: Tensor) -> Tensor:
        self.check_parameters(x, {"log_gain": log_gain})
        return Fn.gain_pan(x, log_gain)

    def to_physical(self, log_gain: Tensor) -> dict[str, Tensor]:
        return Fn.gain_pan_physical(log_gain)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            "log_gain": torch.stack(
                [physical["left_gain_db"], physical["right_gain_db"]], -1
            ) * Fn.LOG10_OVER_20
        }


class StereoImager(Processor):
    """Stereo imager: side channel scaled by ``exp(log_width)`` (seed B.2)."""

    type_name, chain_letter = "imager", "s"

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {"log_width": ParamSpec((1,), 0.0, -5.0, 2.0)}

    def forward(self, x: Tensor, log_width: Tensor) -> Tensor:
        self.check_parameters(x, {"log_width": log_width})
        return Fn.stereo_imager(x, log_width)

    def to_physical(self, log_width: Tensor) -> dict[str, Tensor]:
        return Fn.stereo_imager_physical(log_width)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"log_width": (physical["width_db"] * Fn.LOG10_OVER_20)[..., None]}


class Equalizer(Processor):
    """Zero-phase FIR equaliser, ``2 * bins - 1`` taps (seed B.3: 1024 bins, 2047 taps)."""

    type_name, chain_letter = "eq", "e"
    regularise_gain_staging = True

    def __init__(self, sample_rate: int = SAMPLE_RATE, bins: int = 1024) -> None:
        super().__init__(sample_rate)
        self.bins = int(bins)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {"log_magnitude": ParamSpec((self.bins,), 0.0, -4.0, 2.0)}

    def forward(self, x: Tensor, log_magnitude: Tensor) -> Tensor:
        self.check_parameters(x, {"log_magnitude": log_magnitude})
        return Fn.equalizer(x, log_magnitude)

    def frequencies_hz(self) -> Tensor:
        """Centre frequency of every log-magnitude bin, ``(bins,)``."""
        return torch.arange(self.bins) * (self.sample_rate / (2 * self.bins - 1))

    def to_physical(self, log_magnitude: Tensor) -> dict[str, Tensor]:
        return Fn.equalizer_physical(log_magnitude)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"log_magnitude": physical["gain_db"] * Fn.LOG10_OVER_20}

    @property
    def history_samples(self) -> int:
        return self.bins - 1

    @property
    def lookahead_samples(self) -> int:
        return self.bins - 1


class _Dynamics(Processor):
    """Shared parts of the compressor and noise gate."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, envelope_seconds: float = 0.372) -> None:
        super().__init__(sample_rate)
        self.envelope_taps = max(2, int(round(envelope_seconds * sample_rate)))

    def to_physical(self, **params: Tensor) -> dict[str, Tensor]:
        return Fn.dynamics_physical(sample_rate=self.sample_rate, **params)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return Fn.dynamics_raw(
            physical["time_constant_ms"], physical["threshold_db"], physical["ratio"],
            physical["knee_db"], self.sample_rate,
        )

    def _specs(self, threshold_db: float, ratio: float) -> dict[str, ParamSpec]:
        z_alpha = math.log(1.0 / (math.exp(1.0 / (0.020 * self.sample_rate)) - 1.0))  # 20 ms
        return {
            "z_alpha": ParamSpec((1,), z_alpha, z_alpha - 4.0, z_alpha + 2.0),
            "log_threshold": ParamSpec((1,), threshold_db / Fn.ENERGY_NP_TO_DB, -18.0, 0.0),
            "log_ratio": ParamSpec((1,), math.log(ratio - 1.0), -3.0, 3.0),
            "log_knee": ParamSpec((1,), math.log(6.0 / (2 * Fn.ENERGY_NP_TO_DB)), -3.0, 1.5),
        }

    @property
    def history_samples(self) -> int:
        return self.envelope_taps - 1

    def forward(self, x: Tensor, z_alpha: Tensor, log_threshold: Tensor, log_ratio: Tensor,
                log_knee: Tensor) -> Tensor:
        self.check_parameters(x, dict(z_alpha=z_alpha, log_threshold=log_threshold,
                                      log_ratio=log_ratio, log_knee=log_knee))
        return self.function(x, z_alpha, log_threshold, log_ratio, log_knee, self.envelope_taps)


class Compressor(_Dynamics):
    """Compressor with a one-pole (FIR-approximated) energy envelope and quadratic knee (B.5)."""

    type_name, chain_letter = "compressor", "c"
    function = staticmethod(Fn.compressor)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return self._specs(threshold_db=-20.0, ratio=2.0)


class NoiseGate(_Dynamics):
    """Noise gate (downward expander) sharing the compressor's envelope (B.6)."""

    type_name, chain_letter = "noisegate", "n"
    function = staticmethod(Fn.noise_gate)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return self._specs(threshold_db=-60.0, ratio=2.0)


class MultitapDelay(Processor):
    """Multitap delay: per channel ``taps`` delays, one per ``slot_ms`` slot, each through its own
    zero-phase FIR of ``2 * fir_bins - 1`` taps (seed B.7: 20 taps, 100 ms, 39-tap FIRs, 880
    parameters). Delay lengths train through a surrogate damped sinusoid (straight-through)."""

    type_name, chain_letter = "delay", "d"
    regularise_gain_staging = True

    def __init__(self, sample_rate: int = SAMPLE_RATE, taps: int = 20, slot_ms: float = 100.0,
                 fir_bins: int = 20, gamma: float = 0.01, surrogate_gradient: bool = True) -> None:
        super().__init__(sample_rate)
        self.taps, self.fir_bins, self.gamma = int(taps), int(fir_bins), float(gamma)
        self.slot_samples = int(round(slot_ms * sample_rate / 1000.0))
        self.surrogate_gradient = surrogate_gradient

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {
            # radius 0.99 at angle -pi/2: a quarter slot (25 ms) into each slot
            "z_delay": ParamSpec((2, self.taps, 2), 0.0, -1.0, 1.0),
            "log_magnitude": ParamSpec((2, self.taps, self.fir_bins), -3.0, -8.0, 0.0),
        }

    def init_parameters(self, nodes, device=None, dtype=torch.float32) -> dict[str, Tensor]:
        params = super().init_parameters(nodes, device, dtype)
        params["z_delay"][..., 1] = -0.99
        return params

    def random_parameters(self, nodes, generator=None, scale=1.0, device=None, dtype=torch.float32):
        params = super().random_parameters(nodes, generator, scale, device, dtype)
        angle = torch.rand((nodes, 2, self.taps), generator=generator, dtype=torch.float64)
        angle = (-2.0 * math.pi * angle).to(dtype)
        z_delay = torch.stack([0.99 * torch.cos(angle), 0.99 * torch.sin(angle)], -1)
        params["z_delay"] = z_delay.to(device)
        return params

    def forward(self, x: Tensor, z_delay: Tensor, log_magnitude: Tensor) -> Tensor:
        self.check_parameters(x, {"z_delay": z_delay, "log_magnitude": log_magnitude})
        return Fn.multitap_delay(x, z_delay, log_magnitude, self.slot_samples, self.gamma,
                                 self.surrogate_gradient)

    def to_physical(self, z_delay: Tensor, log_magnitude: Tensor) -> dict[str, Tensor]:
        return Fn.delay_physical(z_delay, log_magnitude, self.slot_samples, self.sample_rate)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            "z_delay": Fn.delay_raw(physical["delay_ms"], physical["z_radius"], self.slot_samples,
                                    self.sample_rate),
            "log_magnitude": physical["tap_eq_db"] * Fn.LOG10_OVER_20,
        }

    @property
    def history_samples(self) -> int:
        return self.taps * self.slot_samples + self.fir_bins - 1

    @property
    def lookahead_samples(self) -> int:
        return self.fir_bins - 1


class Reverb(Processor):
    """Filtered-noise mid/side reverb: ``ir_seconds`` of fixed noise shaped by a decaying STFT
    mask (seed B.4: 2 s, FFT 384, hop 192). Raw: ``init_log_magnitude`` and
    ``delta_log_magnitude``, each ``(2, n_fft // 2 + 1)`` (mid, side)."""

    type_name, chain_letter = "reverb", "r"
    regularise_gain_staging = True

    def __init__(self, sample_rate: int = SAMPLE_RATE, ir_seconds: float = 2.0, n_fft: int = 384,
                 hop_length: int = 192, seed: int = 0) -> None:
        super().__init__(sample_rate)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.ir_samples = int(round(ir_seconds * sample_rate))
        generator = torch.Generator().manual_seed(seed)
        noise = 2.0 * torch.rand(2, self.ir_samples, generator=generator) - 1.0
        window = torch.hann_window(self.n_fft)
        stft = torch.stft(noise, self.n_fft, self.hop_length, window=window, return_complex=True)
        self.register_buffer("noise_stft", stft, persistent=False)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        bins = self.n_fft // 2 + 1
        # init: -40 dB mask, RT60 about 0.5 s at the seed's 44.1 kHz
        decay = math.log(1000.0) / (0.5 * self.sample_rate / self.hop_length)
        delta = decay + math.log(-math.expm1(-decay))
        return {
            "init_log_magnitude": ParamSpec((2, bins), -40.0 * Fn.LOG10_OVER_20, -10.0, 0.0),
            "delta_log_magnitude": ParamSpec((2, bins), delta, delta - 3.0, delta + 3.0),
        }

    def _noise(self, like: Tensor) -> Tensor:
        return self.noise_stft.to(device=like.device, dtype=Fn._complex_of(like))

    def forward(self, x: Tensor, init_log_magnitude: Tensor, delta_log_magnitude: Tensor) -> Tensor:
        self.check_parameters(x, {"init_log_magnitude": init_log_magnitude,
                                  "delta_log_magnitude": delta_log_magnitude})
        return Fn.reverb(x, self._noise(init_log_magnitude), init_log_magnitude,
                         delta_log_magnitude, self.n_fft, self.hop_length, self.ir_samples)

    def impulse_response(self, init_log_magnitude: Tensor, delta_log_magnitude: Tensor) -> Tensor:
        """The stereo IR ``(nodes, 2, ir_samples)`` the reverb convolves with."""
        return Fn.filtered_noise_reverb_ir(
            self._noise(init_log_magnitude), init_log_magnitude, delta_log_magnitude,
            self.n_fft, self.hop_length, self.ir_samples,
        )

    def frequencies_hz(self) -> Tensor:
        return torch.arange(self.n_fft // 2 + 1) * (self.sample_rate / self.n_fft)

    def to_physical(self, init_log_magnitude: Tensor, delta_log_magnitude: Tensor):
        return Fn.reverb_physical(init_log_magnitude, delta_log_magnitude, self.hop_length,
                                  self.sample_rate)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return Fn.reverb_raw(physical["initial_db"], physical["rt60_seconds"], self.hop_length,
                             self.sample_rate)

    @property
    def history_samples(self) -> int:
        return self.ir_samples - 1


PROCESSOR_CLASSES: dict[str, type[Processor]] = {
    cls.type_name: cls
    for cls in (Equalizer, Compressor, NoiseGate, StereoImager, GainPan, MultitapDelay, Reverb)
}
"""Processor type name -> class, in the seed's chain order ``e c n s g d r``."""
CHAIN_LETTERS: dict[str, str] = {cls.chain_letter: name for name, cls in PROCESSOR_CLASSES.items()}
"""Chain letter (``"e"``) -> processor type name (``"eq"``)."""


def make_processors(sample_rate: int = SAMPLE_RATE, **overrides: dict) -> dict[str, Processor]:
    """One instance of every processor type at ``sample_rate``; ``overrides[type_name]`` holds
    extra constructor arguments (e.g. ``reverb={"ir_seconds": 0.5}`` for tests)."""
    unknown = set(overrides) - set(PROCESSOR_CLASSES)
    if unknown:
        raise ValueError(f"unknown processor types {sorted(unknown)}; known: {list(PROCESSOR_CLASSES)}")
    return {name: cls(sample_rate=sample_rate, **overrides.get(name, {}))
            for name, cls in PROCESSOR_CLASSES.items()}
