"""Processor contract, gradients, and analytic behaviour of each of the seven processors.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.console import functional as Fn
from mixrep.console.processors import (
    PROCESSOR_CLASSES, Compressor, Equalizer, GainPan, MultitapDelay, NoiseGate, Reverb,
    make_processors,
)

from tests.console.conftest import SMALL, TEST_RATE

SEED_SIZES = {
    "eq": {"log_magnitude": (1024,)},
    "compressor": {"z_alpha": (1,), "log_threshold": (1,), "slope": (1,), "log_knee": (1,)},
    "noisegate": {"z_alpha": (1,), "log_threshold": (1,), "slope": (1,), "log_knee": (1,)},
    "imager": {"log_width": (1,)},
    "gain_pan": {"log_gain": (2,)},
    "delay": {"z_delay": (2, 20, 2), "log_magnitude": (2, 20, 20)},
    "reverb": {"init_log_magnitude": (2, 193), "delta_log_magnitude": (2, 193)},
}


def test_parameter_sizes_follow_the_seed():
    processors = make_processors()
    sizes = {t: p.parameter_size() for t, p in processors.items()}
    assert sizes == SEED_SIZES
    n_delay = sum(math.prod(s) for s in sizes["delay"].values())
    assert n_delay == 880  # Lee et al. (DAFx 2024), appendix B.7
    assert zero_phase_taps(1024) == 2047


def zero_phase_taps(bins: int) -> int:
    return Fn.zero_phase_fir(torch.zeros(1, bins)).shape[-1]


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_processor_contract(name, small_processors):
    """Shape, dtype, device, finiteness, gradients to input and every parameter."""
    processor = small_processors[name]
    gen = torch.Generator().manual_seed(1)
    # a rise from -100 to +20 dB, which the smoothed envelope follows: every compressor and gate
    # threshold in range is crossed somewhere
    decay = torch.logspace(-5, 1, 1200)
    x = (torch.randn(3, 2, 1200, generator=gen) * decay).requires_grad_()
    params = {k: v.requires_grad_() for k, v in processor.random_parameters(3, gen).items()}
    y = processor(x, **params)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for k, v in params.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), k
        assert v.grad.abs().sum() > 0, f"{name}.{k} gets no gradient"
    # no learnable state inside the module
    assert list(processor.parameters()) == []
    # silence stays finite
    silent = processor(torch.zeros(3, 2, 1200), **{k: v.detach() for k, v in params.items()})
    assert torch.isfinite(silent).all()


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_processor_rejects_wrong_shapes(name, small_processors):
    processor = small_processors[name]
    params = processor.init_parameters(2)
    with pytest.raises(ValueError, match="expected shape"):
        processor(torch.zeros(3, 2, 100), **params)


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_gradcheck_float64(name):
    """Analytic gradients equal finite differences (float64, short signals, small sizes).

    The delay's ``z_delay`` is excluded on purpose: its gradient is Lee et al.'s straight-through
    surrogate (eq. 26), not the derivative of the hard-impulse output.
    """
    options = dict(SMALL)
    options["eq"] = {"bins": 16}
    options["reverb"] = {"ir_seconds": 0.02, "n_fft": 32, "hop_length": 16}
    options["delay"] = {"taps": 2, "slot_ms": 2.0, "fir_bins": 4}
    options["compressor"] = options["noisegate"] = {"min_time_constant_ms": 0.5,
                                                    "max_time_constant_ms": 4.0}
    processor = make_processors(TEST_RATE, **options)[name]
    gen = torch.Generator().manual_seed(2)
    x = (0.5 * torch.randn(2, 2, 64, generator=gen, dtype=torch.float64)).requires_grad_()
    raw = processor.random_parameters(2, gen, dtype=torch.float64)
    if name in ("compressor", "noisegate"):  # keep the level away from the knee's corners
        raw["log_threshold"].fill_(-1.5)
    names = [k for k in raw if not (name == "delay" and k == "z_delay")]
    fixed = {k: v for k, v in raw.items() if k not in names}

    def f(x, *values):
        return processor(x, **fixed, **dict(zip(names, values)))

    inputs = (x, *[raw[k].clone().requires_grad_() for k in names])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_eq_measured_response_matches_request():
    """Measured |H| of the 2047-tap FIR is within 0.5 dB of a smooth requested curve."""
    eq = Equalizer(44100)
    freqs = eq.frequencies_hz()
    octaves = torch.log2(freqs.clamp(min=20.0) / 1000.0)
    gain_db = 6.0 * torch.exp(-(octaves - 0.0) ** 2) - 9.0 * torch.sigmoid(3 * (octaves - 3.0)) + 3.0
    response = eq.from_physical({"gain_db": gain_db[None]})
    impulse = torch.zeros(1, 2, 8192)
    impulse[..., 4096] = 1.0
    out = eq(impulse, **response)[0, 0]
    fir = out[4096 - 1023 : 4096 + 1024]
    measured_db = 20 * torch.log10(torch.fft.rfft(fir.double(), n=2047).abs())
    assert (measured_db[: len(gain_db)] - gain_db).abs().max() < 0.5
    # zero phase: the response is symmetric around the impulse position
    assert torch.allclose(fir, fir.flip(0), atol=1e-6)


def test_gain_of_6_02_db_doubles_amplitude():
    x = torch.randn(2, 2, 100)
    log_gain = torch.full((2, 2), 6.0206 * Fn.LOG10_OVER_20)
    assert torch.allclose(GainPan()(x, log_gain=log_gain), 2 * x, rtol=1e-4)
    physical = GainPan().to_physical(log_gain=log_gain)
    assert torch.allclose(physical["gain_db"], torch.full((2,), 6.0206), atol=1e-3)


def test_constant_power_panning_keeps_energy():
    """With the constant-power law, left^2 + right^2 = 2 g^2 for every pan position."""
    x = torch.ones(5, 2, 10)
    pans = torch.tensor([-0.9, -0.5, 0.0, 0.3, 0.9])
    gain_db = torch.full((5,), -6.0)
    y = GainPan()(x, log_gain=Fn.pan_to_log_gain(gain_db, pans))
    energy = (y[:, :, 0] ** 2).sum(-1)
    assert torch.allclose(energy, torch.full((5,), 2 * 10 ** (-6.0 / 10)), rtol=1e-5)
    assert y[0, 0, 0] > y[0, 1, 0] and y[4, 1, 0] > y[4, 0, 0]  # negative pans go left
    assert torch.allclose(y[2, 0], y[2, 1])
    physical = GainPan().to_physical(log_gain=Fn.pan_to_log_gain(gain_db, pans))
    assert torch.allclose(physical["pan"], pans, atol=1e-5)
    assert torch.allclose(physical["gain_db"], gain_db, atol=1e-4)


def _steady_sine_level_db(processor, level_db: float, **physical) -> float:
    """Output mean-square level (dB) of a steady 1 kHz sine after the envelope settles."""
    sr = processor.sample_rate
    t = torch.arange(sr) / sr
    amplitude = math.sqrt(2 * 10 ** (level_db / 10))  # mean square of A sin = A^2 / 2
    x = (amplitude * torch.sin(2 * math.pi * 1000 * t)).expand(1, 2, -1)
    params = processor.from_physical({k: torch.tensor([v], dtype=torch.float64)
                                      for k, v in physical.items()})
    y = processor(x, **{k: v.float() for k, v in params.items()})
    steady = y[0, 0, sr // 2 :]
    return 10 * math.log10(float((steady**2).mean()))


@pytest.mark.parametrize("level_db", [-40.0, -20.5, -20.0, -10.0])
def test_compressor_follows_static_curve(level_db):
    comp = Compressor(44100)
    threshold, ratio, knee = -20.0, 4.0, 2.0
    out = _steady_sine_level_db(comp, level_db, time_constant_ms=20.0, threshold_db=threshold,
                                ratio=ratio, knee_db=knee)
    half = knee / 2  # the curve is homogeneous, so it holds in dB as in log-energy units
    if level_db >= threshold + half:
        expected = threshold + (level_db - threshold) / ratio
    elif level_db >= threshold - half:
        expected = level_db + (1 / ratio - 1) * (level_db - threshold + half) ** 2 / (4 * half)
    else:
        expected = level_db
    assert abs(out - expected) < 0.1, (out, expected)


@pytest.mark.parametrize("level_db", [-70.0, -55.0, -20.0])
def test_noise_gate_attenuates_below_threshold(level_db):
    gate = NoiseGate(44100)
    threshold, ratio = -50.0, 3.0
    out = _steady_sine_level_db(gate, level_db, time_constant_ms=10.0, threshold_db=threshold,
                                ratio=ratio, knee_db=1.0)
    expected = threshold + ratio * (level_db - threshold) if level_db < threshold else level_db
    assert abs(out - expected) < 0.1, (out, expected)


def test_delay_tap_puts_impulse_at_its_delay():
    sr = 8000
    delay = MultitapDelay(sr)
    physical = delay.to_physical(**delay.init_parameters(1))
    physical["tap_eq_db"] = torch.full((1, 2, 20, 20), -300.0)
    physical["tap_eq_db"][0, 0, 3] = 0.0  # left: tap 3 only, flat
    physical["tap_eq_db"][0, 1, 7] = -6.0206  # right: tap 7 only, half amplitude
    physical["delay_ms"][0, 0, 3] = 337.5  # 2700 samples (slot 3 spans 300-400 ms)
    physical["delay_ms"][0, 1, 7] = 712.5  # 5700 samples
    params = delay.from_physical(physical)
    x = torch.zeros(1, 2, 8000)
    x[..., 100] = 1.0
    y = delay(x, **params)[0]
    assert int(y[0].abs().argmax()) == 100 + 2700
    assert int(y[1].abs().argmax()) == 100 + 5700
    assert abs(float(y[0, 2800]) - 1.0) < 1e-4 and abs(float(y[1, 5800]) - 0.5) < 1e-4
    assert float(y[0].abs().sum()) == pytest.approx(1.0, abs=1e-3)  # nothing else
    assert torch.allclose(delay.to_physical(**params)["delay_ms"][0, 0, 3], torch.tensor(337.5))


def test_delay_surrogate_gradient_moves_tap_towards_target():
    """The straight-through surrogate points the delay towards a target echo (Lee et al. 2024, eq. 25-26)."""
    sr = 8000
    delay = MultitapDelay(sr, taps=1, slot_ms=50.0)  # 400-sample slot
    x = torch.zeros(1, 2, 1200)
    x[..., 0] = 1.0
    target = torch.zeros_like(x)
    target[..., 19 + 150] = 1.0  # zero lag sits at the FIR centre: echo at 150 samples
    z = Fn.delay_raw(torch.full((1, 2, 1), 140 / 8.0), torch.full((1, 2, 1), 0.95), 400, sr)
    z.requires_grad_()
    log_mag = torch.zeros(1, 2, 1, 20)
    smooth = lambda s: Fn.fft_convolve(s, torch.hann_window(41)[None, None], center=20)  # noqa: E731
    loss = ((smooth(delay(x, z_delay=z, log_magnitude=log_mag)) - smooth(target)) ** 2).sum()
    loss.backward()
    before = Fn.delay_samples(z.detach(), 400)
    after = Fn.delay_samples((z - 0.05 * z.grad).detach(), 400)
    assert torch.all(after > before) and torch.all(after < 150.0)


def test_reverb_energy_decays_at_the_set_rate():
    """Energy of the impulse response falls 60 dB in the RT60 set by the decay parameters."""
    sr = 16000
    rev = Reverb(sr, ir_seconds=2.0)
    for rt60 in (0.3, 0.8):
        physical = {"initial_db": torch.zeros(1, 2, 193, dtype=torch.float64),
                    "rt60_seconds": torch.full((1, 2, 193), rt60, dtype=torch.float64)}
        params = {k: v.float() for k, v in rev.from_physical(physical).items()}
        ir = rev.impulse_response(**params)[0].mean(0)  # mid
        block = sr // 50
        energy = (ir[: (len(ir) // block) * block].reshape(-1, block) ** 2).mean(-1)
        db = 10 * torch.log10(energy)
        t = (torch.arange(len(db)) + 0.5) * block / sr
        fit = (t > 0.05) & (db > db[1] - 45)
        slope = torch.linalg.lstsq(torch.stack([t[fit], torch.ones_like(t[fit])], 1),
                                   db[fit, None]).solution[0, 0]
        assert abs(-60.0 / float(slope) - rt60) < 0.05 * rt60
        assert rev.to_physical(**params)["rt60_seconds"].sub(rt60).abs().max() < 1e-3


def test_stereo_imager_scales_side_only():
    x = torch.randn(1, 2, 50)
    y = PROCESSOR_CLASSES["imager"]()(x, log_width=torch.tensor([[math.log(0.5)]]))
    assert torch.allclose(y.sum(1), x.sum(1), atol=1e-6)
    assert torch.allclose(y[:, 0] - y[:, 1], 0.5 * (x[:, 0] - x[:, 1]), atol=1e-6)


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_physical_round_trip(name, small_processors):
    processor = small_processors[name]
    raw = processor.random_parameters(2, torch.Generator().manual_seed(3), dtype=torch.float64)
    back = processor.from_physical(processor.to_physical(**raw))
    x = torch.randn(2, 2, 600, dtype=torch.float64)
    assert torch.allclose(processor(x, **raw), processor(x, **back), atol=1e-8)


def test_hard_pan_is_exact_and_finite():
    """Pan +-1 puts the whole constant-power gain on one side and the floor (-80 dB) on the other."""
    gain_db = torch.tensor([-6.0, -6.0, 0.0])
    pan = torch.tensor([-1.0, 1.0, 0.0])
    log_gain = Fn.pan_to_log_gain(gain_db, pan)
    assert torch.isfinite(log_gain).all()
    db = log_gain / Fn.LOG10_OVER_20
    loud = -6.0 + 10 * math.log10(2.0)
    assert torch.allclose(db[0], torch.tensor([loud, Fn.GAIN_DB_RANGE[0]]), atol=1e-4)
    assert torch.allclose(db[1], torch.tensor([Fn.GAIN_DB_RANGE[0], loud]), atol=1e-4)
    physical = GainPan().to_physical(log_gain=log_gain)
    assert torch.allclose(physical["pan"], pan, atol=1e-3)
    assert torch.allclose(physical["gain_db"], gain_db, atol=1e-3)


@pytest.mark.parametrize("time_constant_ms", [5.0, 100.0, 300.0, 500.0])
def test_envelope_time_constant_is_exact(time_constant_ms):
    """The step response of the energy smoother reaches 1 - 1/e after exactly one time constant,
    however long (Lee et al.'s fixed 0.37 s FIR cut 100 ms and longer short by 4 to 8 %)."""
    sr = 8000
    comp = Compressor(sr)
    z_alpha = Fn.time_constant_to_z_alpha(time_constant_ms, sr).float()
    step = torch.ones(1, 1, int(8 * time_constant_ms / 1000 * sr) + 10)
    response = Fn.one_pole_smooth(step, torch.sigmoid(z_alpha)[None], comp.block)[0, 0].double()
    crossing = int(torch.nonzero(response >= 1 - math.exp(-1.0))[0])
    # sample n holds the response after n + 1 input samples; interpolate around the crossing
    before, after = float(response[crossing - 1]), float(response[crossing])
    measured = (crossing + (1 - math.exp(-1.0) - before) / (after - before)) / sr * 1000
    assert abs(measured - time_constant_ms) / time_constant_ms < 0.01, measured
    assert float(response[-1]) == pytest.approx(1.0, abs=1e-3)
    physical = comp.to_physical(z_alpha=z_alpha.reshape(1, 1), log_threshold=torch.zeros(1, 1),
                                slope=torch.zeros(1, 1), log_knee=torch.zeros(1, 1))
    assert float(physical["time_constant_ms"]) == pytest.approx(time_constant_ms, rel=1e-4)


def test_one_pole_smoother_equals_the_recursion():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 700, generator=gen, dtype=torch.float64) ** 4
    alpha = torch.tensor([0.5, 0.99, 0.9995], dtype=torch.float64)
    smoothed = Fn.one_pole_smooth(x, alpha, block=37)
    state = torch.zeros(3, 1, dtype=torch.float64)
    for n in range(x.shape[-1]):
        state = alpha[:, None] * state + (1 - alpha[:, None]) * x[..., n]
        assert torch.allclose(smoothed[..., n], state, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_any_raw_value_renders_finite(name, small_processors):
    """Raw values far outside the declared ranges (what an unbounded optimiser or head may produce)
    are clamped into them: finite audio, finite gradients, physical values inside the ranges."""
    processor = small_processors[name]
    x = 0.5 * torch.randn(2, 2, 1500, generator=torch.Generator().manual_seed(0))
    for extreme in (-1e4, 1e4):
        params = {k: torch.full((2, *s), extreme, requires_grad=True)
                  for k, s in processor.parameter_size().items()}
        y = processor(x, weight=torch.full((2,), 0.7), **params)
        assert torch.isfinite(y).all(), extreme
        y.square().mean().backward()
        for k, v in params.items():
            assert torch.isfinite(v.grad).all(), (k, extreme)
        physical = processor.to_physical(**{k: v.detach() for k, v in params.items()})
        inside = processor.to_physical(**processor.constrain({k: v.detach() for k, v in params.items()}))
        for k in physical:
            assert torch.isfinite(physical[k]).all() and torch.equal(physical[k], inside[k]), k


def test_declared_ranges_are_the_clamp_ranges(small_processors):
    for processor in small_processors.values():
        for name, spec in processor.parameter_specs().items():
            assert spec.low <= spec.init <= spec.high and spec.low < spec.high, (processor.type_name, name)
            inside = torch.linspace(spec.low, spec.high, 7).reshape(7, *([1] * len(spec.shape)))
            inside = inside.expand(7, *spec.shape)
            assert torch.equal(processor.constrain({name: inside})[name], inside)


def test_delay_radius_is_squashed_inside_the_unit_disk():
    z = torch.tensor([[0.0, 0.0], [3.0, -4.0], [1e6, 1e6]])
    radius = Fn.squash_radius(z).norm(dim=-1)
    assert torch.all(radius < 1.0 + 1e-7) and float(radius[1]) == pytest.approx(math.tanh(5.0))


def test_fft_convolve_gradients_with_broadcast_kernels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 40, generator=gen, dtype=torch.float64, requires_grad=True)
    h = torch.randn(3, 1, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: Fn.fft_convolve(a, b, center=4), (x, h))
    direct = torch.nn.functional.conv1d(
        torch.nn.functional.pad(x.detach().reshape(1, 6, 40), (4, 4)),
        h.detach().flip(-1).repeat_interleave(2, 0), groups=6).reshape(3, 2, 40)
    assert torch.allclose(Fn.fft_convolve(x, h, center=4), direct, atol=1e-10)


@pytest.mark.parametrize("name", list(PROCESSOR_CLASSES))
def test_dry_wet_folded_into_the_processor_equals_the_blend(name, small_processors):
    processor = small_processors[name]
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 900, generator=gen) * torch.logspace(-3, 0, 900)
    params = processor.random_parameters(3, gen)
    weight = torch.tensor([0.0, 0.3, 1.0])
    folded = processor(x, weight=weight, **params)
    blended = Fn.dry_wet(x, processor(x, **params), weight)
    assert torch.allclose(folded, blended, atol=1e-5)


@pytest.mark.parametrize("expander", [False, True])
def test_fused_dynamics_equal_the_reference_curves(expander):
    """The fused gain computer (analytic backward) equals the composition of the documented
    pieces (envelope, knee curve, square-root gain, dry/wet) in value and gradient."""
    gen = torch.Generator().manual_seed(7)
    x = (torch.randn(3, 2, 700, generator=gen, dtype=torch.float64) * torch.logspace(-4, 0, 700,
         dtype=torch.float64)).requires_grad_()
    raw = [torch.tensor(v, dtype=torch.float64).reshape(3, 1).requires_grad_() for v in
           ([2.0, 3.0, 4.5], [-9.0, -6.0, -12.0], [0.4, 0.8, 2.0], [-0.5, 0.3, -1.0])]
    weight = torch.tensor([0.2, 0.7, 1.0], dtype=torch.float64, requires_grad=True)
    function = Fn.noise_gate if expander else Fn.compressor
    fused = function(x, *raw, 16, weight)
    curve = Fn.noise_gate_gain if expander else Fn.compressor_gain
    level = Fn.log_energy_envelope(x, torch.sigmoid(raw[0][:, 0]), 16)
    gain = torch.exp(0.5 * curve(level, raw[1][:, :, None], raw[2][:, :, None],
                                 torch.exp(raw[3])[:, :, None]))
    reference = Fn.dry_wet(x, x * gain, weight)
    assert torch.allclose(fused, reference, rtol=1e-10, atol=1e-12)
    probe = torch.randn(fused.shape, generator=gen, dtype=torch.float64)
    inputs = [x, *raw, weight]
    got = torch.autograd.grad((fused * probe).sum(), inputs)
    want = torch.autograd.grad((reference * probe).sum(), inputs)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("n_fft, hop, length", [(384, 192, 8800), (384, 128, 8800), (64, 32, 1000)])
def test_inverse_stft_equals_torch_istft(n_fft, hop, length):
    gen = torch.Generator().manual_seed(0)
    frames = 1 + length // hop
    spectra = torch.randn(3, n_fft // 2 + 1, frames, dtype=torch.complex128, generator=gen)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    expected = torch.istft(spectra, n_fft, hop, window=window, length=length)
    assert torch.allclose(Fn.inverse_stft(spectra, n_fft, hop, length), expected, atol=1e-10)
