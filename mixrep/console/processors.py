"""Processor modules: thin ``nn.Module`` wrappers over :mod:`mixrep.console.functional`.

A processor holds no learnable parameters, only fixed buffers (the reverb's noise) and
hyperparameters (sample rate, lengths). Its parameters arrive as keyword tensors batched over the
nodes it processes at once, as in GRAFX (grafx documentation, "Differentiable Processors")::

    y = processor(x, **params)                 # wet only: f(x)
    y = processor(x, weight=w, **params)       # dry/wet: w f(x) + (1 - w) x, w: (nodes,)

Every processor declares

* ``parameter_size()``: ``{name: shape}`` without the node axis (always tuples);
* ``parameter_specs()``: the same names with an initial value (a near-transparent console) and the
  *safe* raw range ``(low, high)``: every raw value is clamped into it before use (``constrain``),
  so nothing a fit or a prediction head produces can render non-finite audio; a head maps onto
  it (e.g. ``low + (high - low) * sigmoid(out)``);
* ``dry_wet_spec()``: the per-node dry/wet logit's initial value and range;
* ``to_physical(**params)`` / ``from_physical(physical)``: raw <-> physical units (dB, ms, Hz,
  ratio, seconds), the one documented place where each mapping lives (functional ``*_physical``);
* ``history_samples`` / ``lookahead_samples``: how far into the past/future its output depends on
  its input (used to render long signals in exact chunks).

Shape:
    ``(nodes, channels=2, samples)`` in and out.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
    Sungho Lee, grafx library documentation, "Differentiable Processors".
"""

from __future__ import annotations

import abc

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
        init: initial raw value (the console's near-transparent starting point).
        low, high: the safe raw range. Processors clamp every raw value into it before use, so any
            value in it renders finite audio with finite gradients, and a prediction head that maps
            onto it (``low + (high - low) * sigmoid(out)``) can never leave it.
    """

    shape: tuple[int, ...]
    init: float
    low: float
    high: float


DRY_WET = "dry_wet_logit"
"""Key of the per-node dry/wet logit in each processor type's parameter dict."""
DRY_WET_RANGE = (-10.0, 10.0)
"""Safe raw range of every dry/wet logit: weights from 4.5e-5 to 1 - 4.5e-5."""


def clamp_inclusive(x: Tensor, low: float, high: float) -> Tensor:
    """``clamp(x, low, high)`` whose gradient also passes *at* the bounds (torch's stops there),
    so a parameter an optimiser step projected onto a bound can still move back inside."""
    inside = (x >= low) & (x <= high)
    return torch.where(inside, x, x.detach().clamp(low, high))


def dry_wet_weight(logit: Tensor) -> Tensor:
    """Dry/wet weight ``sigmoid(logit)`` of logits clamped into :data:`DRY_WET_RANGE`."""
    return torch.sigmoid(clamp_inclusive(logit, *DRY_WET_RANGE))


class Processor(nn.Module, metaclass=abc.ABCMeta):
    """Base class: the parameter protocol shared by every processor.

    Subclasses implement :meth:`process` (bounded raw parameters -> audio, through
    :mod:`~mixrep.console.functional`) and :meth:`physical` (bounded raw -> physical units);
    :meth:`forward` and :meth:`to_physical` clamp raw values into the declared ranges first, the one
    place where any raw value is made safe.
    """

    type_name: str = ""
    chain_letter: str = ""
    regularise_gain_staging: bool = False
    """True for the LTI processors (EQ, delay, reverb) the gain-staging loss applies to."""
    dry_wet_init: float = 3.0
    """Initial dry/wet logit. Processors that are the identity at their initial parameters start
    almost fully wet (0.95) so their parameters get the full gradient; the echo effects (delay,
    reverb), which cannot be transparent when wet, start almost dry (see :meth:`parameter_specs`)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)

    @abc.abstractmethod
    def parameter_specs(self) -> dict[str, ParamSpec]:
        raise NotImplementedError

    def dry_wet_spec(self) -> ParamSpec:
        """The per-node dry/wet logit (shape ``()``): weight ``sigmoid(logit)``."""
        return ParamSpec((), self.dry_wet_init, *DRY_WET_RANGE)

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
        the range less 1% at each end (for tests; musical targets come from
        :mod:`mixrep.console.prior`)."""
        out = {}
        for name, spec in self.parameter_specs().items():
            u = torch.rand((nodes, *spec.shape), generator=generator, dtype=torch.float64)
            value = spec.init + (u - 0.5) * 0.5 * scale * (spec.high - spec.low)
            margin = 0.01 * (spec.high - spec.low)
            value = value.clamp(spec.low + margin, spec.high - margin)
            out[name] = value.to(device=device, dtype=dtype)
        return out

    def constrain(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """Raw parameters clamped into their safe ranges (values inside are unchanged)."""
        specs = self.parameter_specs()
        return {name: clamp_inclusive(value, specs[name].low, specs[name].high)
                for name, value in params.items()}

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

    def forward(self, x: Tensor, *, weight: Tensor | None = None, **params: Tensor) -> Tensor:
        """Process ``x`` with raw ``params``; with a dry/wet ``weight`` ``(nodes,)`` return
        ``weight * f(x) + (1 - weight) * x``, else ``f(x)``.

        Shape:
            x: ``(nodes, 2, samples)`` -> same; ``params[name]``: ``(nodes, *size)``.
        """
        self.check_parameters(x, params)
        return self.process(x, weight, **self.constrain(params))

    @abc.abstractmethod
    def process(self, x: Tensor, weight: Tensor | None, **params: Tensor) -> Tensor:
        raise NotImplementedError

    def to_physical(self, **params: Tensor) -> dict[str, Tensor]:
        """Physical units (dB, ms, Hz, ratio, seconds) of raw ``params`` (clamped as rendered)."""
        return self.physical(**self.constrain(params))

    @abc.abstractmethod
    def physical(self, **params: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    @abc.abstractmethod
    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    @property
    def history_samples(self) -> int:
        return 0

    @property
    def lookahead_samples(self) -> int:
        return 0


class GainPan(Processor):
    """Gain/panning: ``y = exp(log_gain) * x`` per channel (Lee et al. 2024, appendix B.1). Raw: ``log_gain (2,)``."""

    type_name, chain_letter = "gain_pan", "g"

    def parameter_specs(self) -> dict[str, ParamSpec]:
        low, high = (g * Fn.LOG10_OVER_20 for g in Fn.GAIN_DB_RANGE)
        return {"log_gain": ParamSpec((2,), 0.0, low, high)}  # -80 .. +24 dB per channel

    def process(self, x: Tensor, weight: Tensor | None, log_gain: Tensor) -> Tensor:
        return Fn.gain_pan(x, log_gain, weight)

    def physical(self, log_gain: Tensor) -> dict[str, Tensor]:
        return Fn.gain_pan_physical(log_gain)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        """From ``gain_db`` and ``pan`` (constant-power law) or ``left_gain_db``/``right_gain_db``."""
        if "left_gain_db" in physical:
            log_gain = torch.stack([physical["left_gain_db"], physical["right_gain_db"]], -1)
            return {"log_gain": log_gain * Fn.LOG10_OVER_20}
        return {"log_gain": Fn.pan_to_log_gain(physical["gain_db"], physical["pan"])}


class StereoImager(Processor):
    """Stereo imager: side channel scaled by ``exp(log_width)`` (Lee et al. 2024, appendix B.2)."""

    type_name, chain_letter = "imager", "s"

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {"log_width": ParamSpec((1,), 0.0, -5.0, 2.0)}  # width 0.007 .. 7.4

    def process(self, x: Tensor, weight: Tensor | None, log_width: Tensor) -> Tensor:
        return Fn.stereo_imager(x, log_width, weight)

    def physical(self, log_width: Tensor) -> dict[str, Tensor]:
        return Fn.stereo_imager_physical(log_width)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        if "width" in physical:
            return {"log_width": torch.log(physical["width"])[..., None]}
        return {"log_width": (physical["width_db"] * Fn.LOG10_OVER_20)[..., None]}


class Equalizer(Processor):
    """Zero-phase FIR equaliser, ``2 * bins - 1`` taps (Lee et al. 2024, appendix B.3: 1024 bins, 2047 taps)."""

    type_name, chain_letter = "eq", "e"
    regularise_gain_staging = True

    def __init__(self, sample_rate: int = SAMPLE_RATE, bins: int = 1024) -> None:
        super().__init__(sample_rate)
        self.bins = int(bins)

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {"log_magnitude": ParamSpec((self.bins,), 0.0, -40.0 * Fn.LOG10_OVER_20,
                                           20.0 * Fn.LOG10_OVER_20)}  # -40 .. +20 dB

    def process(self, x: Tensor, weight: Tensor | None, log_magnitude: Tensor) -> Tensor:
        return Fn.equalizer(x, log_magnitude, weight)

    def frequencies_hz(self) -> Tensor:
        """Centre frequency of every log-magnitude bin, ``(bins,)``."""
        return torch.arange(self.bins) * (self.sample_rate / (2 * self.bins - 1))

    def physical(self, log_magnitude: Tensor) -> dict[str, Tensor]:
        return Fn.equalizer_physical(log_magnitude)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"log_magnitude": physical["gain_db"] * Fn.LOG10_OVER_20}

    @property
    def history_samples(self) -> int:
        return self.bins - 1

    @property
    def lookahead_samples(self) -> int:
        return self.bins - 1


ENVELOPE_TAIL = 1e-6
"""A dynamics processor's history: samples until its smoother's impulse response, at the longest
time constant, has decayed by this factor (exact chunked rendering to that precision)."""


class _Dynamics(Processor):
    """Shared parts of the compressor and noise gate.

    Args:
        min_time_constant_ms, max_time_constant_ms: the smoother's range (the raw ``z_alpha`` is
            clamped into it); the exact one-pole recursion (:func:`~mixrep.console.functional.
            one_pole_smooth`) keeps every time constant in it at its value, however long.
    """

    expander: bool = False
    """Gate (downward expander) rather than compressor: sets the slope's meaning and range."""
    threshold_db: float = -40.0
    """Initial threshold. The initial slope is 0 (exactly transparent); the slope has a gradient
    wherever the level is above (compressor) or below (gate) the threshold less the knee."""
    max_slope: float = 0.95
    """Largest slope: ratio 20 (compressor)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, min_time_constant_ms: float = 0.5,
                 max_time_constant_ms: float = 500.0) -> None:
        super().__init__(sample_rate)
        if not 0 < min_time_constant_ms < max_time_constant_ms:
            raise ValueError(f"need 0 < min_time_constant_ms < max_time_constant_ms, got "
                             f"{min_time_constant_ms}, {max_time_constant_ms}")
        self.min_time_constant_ms = float(min_time_constant_ms)
        self.max_time_constant_ms = float(max_time_constant_ms)
        # exp(block / (sr * tau_min)) <= e^30 keeps the in-block cumulative sum in float32 range
        self.block = max(1, int(30.0 * sample_rate * min_time_constant_ms / 1000.0))
        # 20 ms, or the geometric middle of a range that excludes it
        middle = math.sqrt(min_time_constant_ms * max_time_constant_ms)
        self.initial_time_constant_ms = 20.0 if 2 * min_time_constant_ms < 20.0 < max_time_constant_ms / 2 else middle

    def physical(self, **params: Tensor) -> dict[str, Tensor]:
        return Fn.dynamics_physical(sample_rate=self.sample_rate, expander=self.expander, **params)

    def from_physical(self, physical: dict[str, Tensor]) -> dict[str, Tensor]:
        return Fn.dynamics_raw(
            physical["time_constant_ms"], physical["threshold_db"], physical["ratio"],
            physical["knee_db"], self.sample_rate, self.expander,
        )

    def parameter_specs(self) -> dict[str, ParamSpec]:
        z_of = lambda ms: float(Fn.time_constant_to_z_alpha(ms, self.sample_rate))  # noqa: E731
        return {
            "z_alpha": ParamSpec((1,), z_of(self.initial_time_constant_ms),
                                 z_of(self.min_time_constant_ms),
                                 z_of(self.max_time_constant_ms)),
            "log_threshold": ParamSpec((1,), self.threshold_db / Fn.ENERGY_NP_TO_DB,
                                       -100.0 / Fn.ENERGY_NP_TO_DB, 0.0),  # -100 .. 0 dB
            "slope": ParamSpec((1,), 0.0, 0.0, self.max_slope),
            "log_knee": ParamSpec((1,), math.log(6.0 / (2 * Fn.ENERGY_NP_TO_DB)), -3.0, 1.5),
        }

    @property
    def history_samples(self) -> int:
        samples_per_tau = self.sample_rate * self.max_time_constant_ms / 1000.0
        return int(math.ceil(-math.log(ENVELOPE_TAIL) * samples_per_tau))

    def process(self, x: Tensor, weight: Tensor | None, z_alpha: Tensor, log_threshold: Tensor,
                slope: Tensor, log_knee: Tensor) -> Tensor:
        return self.function(x, z_alpha, log_threshold, slope, log_knee, self.block, weight)

    def gain_envelope(self, x: Tensor, weight: Tensor | None = None, **params: Tensor) -> Tensor:
        """The gain ``(nodes, 1, samples)`` this processor applies to ``x`` (output = x * gain)."""
        self.check_parameters(x, params)
        bounded = self.constrain(params)
        return Fn.dynamics_gain(x, bounded["z_alpha"], bounded["log_threshold"], bounded["slope"],
                                bounded["log_knee"], self.block, self.expander, weight)


class Compressor(_Dynamics):
    """Compressor with an exact one-pole energy envelope and quadratic knee (B.5)."""

    type_name, chain_letter = "compressor", "c"
    function = staticmethod(Fn.compressor)


class NoiseGate(_Dynamics):
    """Noise gate (downward expander) sharing the compressor's envelope (B.6)."""

    type_name, chain_letter = "noisegate", "n"
    function = staticmethod(Fn.noise_gate)
    expander = True
    threshold_db = -60.0
    max_slope = 10.0
    """Largest slope: ratio 11 (gate)."""


class MultitapDelay(Processor):
    """Multitap delay: per channel ``taps`` delays, one per ``slot_ms`` slot, each through its own
    zero-phase FIR of ``2 * fir_bins - 1`` taps (Lee et al. 2024, appendix B.7: 20 taps, 100 ms, 39-tap FIRs, 880
    parameters). Delay lengths train through a surrogate damped sinusoid (straight-through) whose
    radius is squashed into the unit disk, ``tanh(|z|)``.

    Starts almost dry (dry/wet 0.0067) with every tap at -40 dB: the initial echoes sit about 60 dB
    below the signal."""

    type_name, chain_letter = "delay", "d"
    regularise_gain_staging = True
    dry_wet_init = -5.0
    initial_radius = 0.99

    def __init__(self, sample_rate: int = SAMPLE_RATE, taps: int = 20, slot_ms: float = 100.0,
                 fir_bins: int = 20, gamma: float = 0.01, surrogate_gradient: bool = True) -> None:
        super().__init__(sample_rate)
        self.taps, self.fir_bins, self.gamma = int(taps), int(fir_bins), float(gamma)
        self.slot_samples = int(round(slot_ms * sample_rate / 1000.0))
        self.surrogate_gradient = surrogate_gradient

    def parameter_specs(self) -> dict[str, ParamSpec]:
        return {
            # raw |z| up to 4.2: squashed radius up to 0.9996
            "z_delay": ParamSpec((2, self.taps, 2), 0.0, -3.0, 3.0),
            "log_magnitude": ParamSpec((2, self.taps, self.fir_bins), -40.0 * Fn.LOG10_OVER_20,
                                       -80.0 * Fn.LOG10_OVER_20, 0.0),  # -80 .. 0 dB per tap
        }

    def init_parameters(self, nodes, device=None, dtype=torch.float32) -> dict[str, Tensor]:
        """Every tap a quarter slot (25 ms) into its slot, squashed radius 0.99."""
        params = super().init_parameters(nodes, device, dtype)
        params["z_delay"][..., 1] = -math.atanh(self.initial_radius)
        return params

    def random_parameters(self, nodes, generator=None, scale=1.0, device=None, dtype=torch.float32):
        params = super().random_parameters(nodes, generator, scale, device, dtype)
        angle = torch.rand((nodes, 2, self.taps), generator=generator, dtype=torch.float64)
        angle = -2.0 * math.pi * angle
        radius = math.atanh(self.initial_radius)
        z_delay = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
        params["z_delay"] = z_delay.to(device=device, dtype=dtype)
        return params

    def process(self, x: Tensor, weight: Tensor | None, z_delay: Tensor,
                log_magnitude: Tensor) -> Tensor:
        return Fn.multitap_delay(x, z_delay, log_magnitude, self.slot_samples, self.gamma,
                                 self.surrogate_gradient, weight)

    def physical(self, z_delay: Tensor, log_magnitude: Tensor) -> dict[str, Tensor]:
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
    mask (Lee et al. 2024, appendix B.4: 2 s, FFT 384, hop 192). Raw: ``init_log_magnitude`` and
    ``delta_log_magnitude``, each ``(2, n_fft // 2 + 1)`` (mid, side).

    Starts almost dry (dry/wet 0.0067) with a -40 dB mask and an RT60 of 0.5 s."""

    type_name, chain_letter = "reverb", "r"
    regularise_gain_staging = True
    dry_wet_init = -5.0

    def __init__(self, sample_rate: int = SAMPLE_RATE, ir_seconds: float = 2.0, n_fft: int = 384,
                 hop_length: int = 192, seed: int = 0) -> None:
        super().__init__(sample_rate)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.ir_samples = int(round(ir_seconds * sample_rate))
        generator = torch.Generator().manual_seed(seed)
        noise = 2.0 * torch.rand(2, self.ir_samples, generator=generator) - 1.0
        window = torch.hann_window(self.n_fft)
        stft = torch.stft(noise, self.n_fft, self.hop_length, window=window, return_complex=True)
        self.register_buffer("noise_frames", stft.transpose(-1, -2).contiguous(), persistent=False)

    def _delta(self, rt60_seconds: float) -> float:
        return float(Fn.reverb_raw(torch.zeros(()), torch.tensor(rt60_seconds, dtype=torch.float64),
                                   self.hop_length, self.sample_rate)["delta_log_magnitude"])

    def parameter_specs(self) -> dict[str, ParamSpec]:
        bins = self.n_fft // 2 + 1
        return {
            "init_log_magnitude": ParamSpec((2, bins), -40.0 * Fn.LOG10_OVER_20,
                                            -80.0 * Fn.LOG10_OVER_20, 0.0),  # -80 .. 0 dB
            # RT60 from 10 s (slowest decay, lowest raw) to 0.05 s
            "delta_log_magnitude": ParamSpec((2, bins), self._delta(0.5), self._delta(10.0),
                                             self._delta(0.05)),
        }

    def _noise(self, like: Tensor) -> Tensor:
        return self.noise_frames.to(device=like.device, dtype=Fn._complex_of(like))

    def process(self, x: Tensor, weight: Tensor | None, init_log_magnitude: Tensor,
                delta_log_magnitude: Tensor) -> Tensor:
        return Fn.reverb(x, self._noise(init_log_magnitude), init_log_magnitude,
                         delta_log_magnitude, self.n_fft, self.hop_length, self.ir_samples, weight)

    def impulse_response(self, init_log_magnitude: Tensor, delta_log_magnitude: Tensor) -> Tensor:
        """The stereo IR ``(nodes, 2, ir_samples)`` the reverb convolves with (wet only)."""
        bounded = self.constrain({"init_log_magnitude": init_log_magnitude,
                                  "delta_log_magnitude": delta_log_magnitude})
        return Fn.filtered_noise_reverb_ir(
            self._noise(init_log_magnitude), bounded["init_log_magnitude"],
            bounded["delta_log_magnitude"], self.n_fft, self.hop_length, self.ir_samples,
        )

    def frequencies_hz(self) -> Tensor:
        return torch.arange(self.n_fft // 2 + 1) * (self.sample_rate / self.n_fft)

    def physical(self, init_log_magnitude: Tensor, delta_log_magnitude: Tensor):
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
"""Processor type name -> class, in Lee et al.'s chain order ``e c n s g d r``."""
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
