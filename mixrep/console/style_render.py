"""The mixing-style space rendered in torch: batched, differentiable in every continuous setting.

:func:`render_style` renders what :func:`mixrep.styles.mix_style.render_mix` renders, with the same
signal flow, from a :class:`StyleTensors` (a :class:`~mixrep.styles.mix_style.MixStyle` laid out as
tensors for one song's tracks, or a batch of songs with padded tracks)::

    per track: Butterworth HP / LP and EQ bands (one frequency response, FFT) -> compressor +
    make-up (threshold relative to the strip's RMS) -> saturation (gain-staged from the same RMS)
    -> fader -> width -> constant-power pan -> post-fader sends
    per stem: the tracks' sum, plus the delay bus and reverb bus returns of the stem's sends
    master: EQ (FFT) -> linked bus compressor -> limiter (peak driven into the ceiling) -> loudness

Linear processors are exact frequency responses of the reference's filters applied to zero-padded
FFTs (:mod:`mixrep.console.style_dsp`): the FFT is longer than the clip plus the filter's tail
(``tail_db`` below the response's start), so the circular wrap is below that level. The dynamics
are :mod:`mixrep.console.style_dynamics`. A setting that is absent in the style (a bypassed
compressor, no delay bus) keeps a tensor value but its presence mask is ``False``: the processor is
not applied, exactly as the reference skips it, and the value gets no gradient. Presence is
discrete (not differentiable); every present continuous setting is.

:meth:`StyleTensors.to_mix_style` turns (fitted) tensors back into a settings file.

Shape:
    tracks ``(tracks, channels=2, samples)`` or ``(batch, tracks, channels=2, samples)``; the
    style's per-track settings ``(tracks,)`` / ``(batch, tracks)``, EQ bands ``(..., tracks, bands)``,
    bus, master and loudness settings ``()`` / ``(batch,)``; the result ``(..., stems=4, 2, samples)``
    in :data:`~mixrep.constants.STEMS` order, summing to the mix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mixrep.audio.stems import stem_index
from mixrep.console.style_dsp import (
    butterworth_response,
    eq_band_response,
    feedback_delay_response,
    freeverb_lengths,
    freeverb_response,
    rfft_frequencies,
)
from mixrep.console.style_dynamics import (
    bus_compressor_gain,
    channel_compressor,
    db_to_gain,
    limiter_gain,
    loudness_lufs,
    rms_level_db,
    saturation,
)
from mixrep.constants import CHANNELS, STEMS
from mixrep.errors import MixrepError
from mixrep.styles.mix_style import (
    EQ_KINDS,
    ChannelStrip,
    CompressorSettings,
    DelayBus,
    EqBand,
    LimiterSettings,
    MasterBus,
    MixStyle,
    ReverbBus,
)

FILTER_ORDER = 2
"""Order of the strips' Butterworth filters (``mix_style`` renders with ``primitives.butterworth``'s default)."""

TAIL_DB = 80.0
"""Default level (dB below a response's start) at which a linear processor's tail is cut by the FFT length."""

COMPRESSOR_FIELDS = ("threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db")

# Neutral values for absent settings (never rendered: their presence mask is False).
_ABSENT = {"fader_db": 0.0, "pan": 0.0, "width": 1.0, "highpass_hz": 20.0, "lowpass_hz": 20000.0,
           "compressor_threshold_db": 0.0, "compressor_ratio": 2.0, "compressor_attack_ms": 10.0,
           "compressor_release_ms": 100.0, "compressor_makeup_db": 0.0, "saturation_drive_db": 6.0,
           "delay_send_db": -20.0, "reverb_send_db": -20.0, "delay_seconds": 0.25, "delay_feedback": 0.0,
           "reverb_room_size": 0.5, "reverb_damping": 0.5, "reverb_width": 1.0,
           "master_compressor_threshold_db": 0.0, "master_compressor_ratio": 2.0,
           "master_compressor_attack_ms": 10.0, "master_compressor_release_ms": 100.0,
           "master_compressor_makeup_db": 0.0, "limiter_drive_db": 0.0, "limiter_ceiling_db": -1.0,
           "limiter_release_ms": 100.0, "eq_frequency_hz": 1000.0, "eq_gain_db": 0.0, "eq_q": 0.7071,
           "master_eq_frequency_hz": 1000.0, "master_eq_gain_db": 0.0, "master_eq_q": 0.7071}


@dataclass
class StyleTensors:
    """A mix style for a song's tracks (or a batch of songs) as tensors.

    Every float field is a continuous setting (make it ``requires_grad`` to fit it); every ``*_on``
    field is its presence mask (bool). ``stem`` is each track's stem class (index into
    :data:`~mixrep.constants.STEMS`), ``track_mask`` marks real (not padded) tracks. EQ bands sit
    in slots of fixed kinds (``eq_kinds``; bands of a cascade commute, so the order of a strip's
    bands does not matter).

    Shape:
        leading dims ``(...)`` = ``()`` for one song or ``(batch,)``; per track ``(..., tracks)``;
        EQ ``(..., tracks, len(eq_kinds))``; buses, master, loudness ``(...)``; master EQ
        ``(..., len(master_eq_kinds))``.
    """

    eq_kinds: tuple[str, ...]
    master_eq_kinds: tuple[str, ...]
    stem: Tensor
    track_mask: Tensor
    fader_db: Tensor
    pan: Tensor
    width: Tensor
    width_on: Tensor
    highpass_hz: Tensor
    highpass_on: Tensor
    lowpass_hz: Tensor
    lowpass_on: Tensor
    eq_frequency_hz: Tensor
    eq_gain_db: Tensor
    eq_q: Tensor
    eq_on: Tensor
    compressor_threshold_db: Tensor
    compressor_ratio: Tensor
    compressor_attack_ms: Tensor
    compressor_release_ms: Tensor
    compressor_makeup_db: Tensor
    compressor_on: Tensor
    saturation_drive_db: Tensor
    saturation_on: Tensor
    delay_send_db: Tensor
    delay_send_on: Tensor
    reverb_send_db: Tensor
    reverb_send_on: Tensor
    delay_seconds: Tensor
    delay_feedback: Tensor
    delay_on: Tensor
    reverb_room_size: Tensor
    reverb_damping: Tensor
    reverb_width: Tensor
    reverb_on: Tensor
    master_eq_frequency_hz: Tensor
    master_eq_gain_db: Tensor
    master_eq_q: Tensor
    master_eq_on: Tensor
    master_compressor_threshold_db: Tensor
    master_compressor_ratio: Tensor
    master_compressor_attack_ms: Tensor
    master_compressor_release_ms: Tensor
    master_compressor_makeup_db: Tensor
    master_compressor_on: Tensor
    limiter_drive_db: Tensor
    limiter_ceiling_db: Tensor
    limiter_release_ms: Tensor
    limiter_on: Tensor
    loudness_lufs: Tensor

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_styles(cls, styles: Sequence[MixStyle], names: Sequence[Sequence[str]],
                    stems: Sequence[Sequence[str | int]], dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> StyleTensors:
        """A batch: song ``b`` is ``styles[b]`` applied to tracks ``names[b]`` of stem classes ``stems[b]``.

        Tracks are padded to the longest song (``track_mask`` False); each track gets the strip
        :meth:`MixStyle.strip_for` gives it.

        Raises:
            ValueError: lengths disagree, a song has no tracks, a track has no strip, an unknown
                stem class or EQ band kind.

        Shape:
            per-track fields ``(batch, max tracks)``.
        """
        if not len(styles) == len(names) == len(stems):
            raise ValueError(f"{len(styles)} styles, {len(names)} name lists and {len(stems)} stem lists: "
                             f"give one of each per song")
        strips = []
        for b, (style, song_names, song_stems) in enumerate(zip(styles, names, stems)):
            if len(song_names) != len(song_stems) or not song_names:
                raise ValueError(f"song {b}: {len(song_names)} track names and {len(song_stems)} stem classes; "
                                 f"give one (at least one track) per track")
            strips.append([style.strip_for(n, STEMS[stem_index(s)]) for n, s in zip(song_names, song_stems)])
        eq_kinds = _slot_kinds([strip.eq for song in strips for strip in song])
        master_eq_kinds = _slot_kinds([style.master.eq for style in styles])
        tracks = max(len(song) for song in strips)
        per_song: list[dict[str, list]] = []
        for style, song, song_stems in zip(styles, strips, stems):
            rows: dict[str, list] = {}
            for k in range(tracks):
                real = k < len(song)
                strip_rows = _strip_rows(song[k] if real else ChannelStrip(), style, eq_kinds)
                strip_rows.update(stem=stem_index(song_stems[k]) if real else 0, track_mask=real)
                for key, value in strip_rows.items():
                    rows.setdefault(key, []).append(value)
            per_song.append({**rows, **_bus_rows(style, master_eq_kinds)})
        bool_keys = {f.name for f in dataclasses.fields(cls) if f.name.endswith("_on")} | {"track_mask"}
        fields: dict = {"eq_kinds": eq_kinds, "master_eq_kinds": master_eq_kinds}
        for key in per_song[0]:
            values = [song[key] for song in per_song]
            if key == "stem":
                fields[key] = torch.tensor(values, dtype=torch.long, device=device)
            elif key in bool_keys:
                fields[key] = torch.tensor(values, dtype=torch.bool, device=device)
            else:
                fields[key] = torch.tensor(values, dtype=dtype, device=device)
        return cls(**fields)

    @classmethod
    def from_style(cls, style: MixStyle, names: Sequence[str], stems: Sequence[str | int],
                   dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> StyleTensors:
        """One song (no batch dim): per-track fields ``(tracks,)``. See :meth:`from_styles`."""
        return cls.from_styles([style], [names], [stems], dtype, device).select(0)

    # ------------------------------------------------------------------ access

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor field by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _STATIC}

    def settings(self) -> dict[str, Tensor]:
        """The continuous settings (float fields): what a fit optimises."""
        return {k: v for k, v in self.tensors().items() if v.is_floating_point()}

    def replace(self, **changes: Tensor) -> StyleTensors:
        """A copy with some fields replaced (e.g. settings that require grad)."""
        return dataclasses.replace(self, **changes)

    def map(self, fn: Callable[[Tensor], Tensor]) -> StyleTensors:
        """``fn`` applied to every tensor field (``.to(device)``, ``.unsqueeze(0)``, ``.detach()``...)."""
        return dataclasses.replace(self, **{k: fn(v) for k, v in self.tensors().items()})

    @property
    def batched(self) -> bool:
        return self.loudness_lufs.ndim == 1

    def select(self, index: int) -> StyleTensors:
        """Song ``index`` of a batch (its padded tracks kept, ``track_mask`` False)."""
        if not self.batched:
            raise ValueError("select() needs batched style tensors (built with from_styles)")
        return self.map(lambda t: t[index])

    # ------------------------------------------------------------------ back to a settings file

    def to_mix_style(self, names: Sequence[str]) -> MixStyle:
        """The :class:`MixStyle` these tensors hold (one song), strips keyed by track name.

        Absent settings stay absent; bus sends exist only while that bus does. A track whose name
        is its stem class (``bass``) also serves other tracks of that class in ``strip_for``.

        Raises:
            ValueError: batched tensors, names not matching the real tracks, or two tracks of one
                name with different settings (a settings file holds one strip per name).
        """
        if self.batched:
            raise ValueError("to_mix_style needs one song's tensors: use select(b) on a batch")
        real = int(self.track_mask.sum())
        if len(names) != real or not bool(self.track_mask[:real].all()):
            raise ValueError(f"{len(names)} names for {real} tracks (the real tracks must come first)")
        v = {k: t.detach().cpu().tolist() for k, t in self.tensors().items()}
        strips: dict[str, ChannelStrip] = {}
        for k, name in enumerate(names):
            def opt(key: str, on: str, k=k):
                return float(v[key][k]) if v[on][k] else None

            compressor = None
            if v["compressor_on"][k]:
                compressor = CompressorSettings(*(float(v[f"compressor_{f}"][k]) for f in COMPRESSOR_FIELDS))
            strip = ChannelStrip(
                fader_db=float(v["fader_db"][k]), pan=float(v["pan"][k]), width=opt("width", "width_on"),
                highpass_hz=opt("highpass_hz", "highpass_on"), lowpass_hz=opt("lowpass_hz", "lowpass_on"),
                eq=_bands(self.eq_kinds, v["eq_frequency_hz"][k], v["eq_gain_db"][k], v["eq_q"][k], v["eq_on"][k]),
                compressor=compressor, saturation_drive_db=opt("saturation_drive_db", "saturation_on"),
                delay_send_db=opt("delay_send_db", "delay_send_on") if v["delay_on"] else None,
                reverb_send_db=opt("reverb_send_db", "reverb_send_on") if v["reverb_on"] else None,
            )
            if name in strips and strips[name] != strip:
                raise ValueError(f"two tracks named {name!r} have different settings; a mix style holds one strip "
                                 f"per name (rename the tracks)")
            strips[name] = strip
        master_compressor = None
        if v["master_compressor_on"]:
            master_compressor = CompressorSettings(*(float(v[f"master_compressor_{f}"]) for f in COMPRESSOR_FIELDS))
        limiter = None
        if v["limiter_on"]:
            limiter = LimiterSettings(float(v["limiter_drive_db"]), float(v["limiter_ceiling_db"]),
                                      float(v["limiter_release_ms"]))
        return MixStyle(
            strips=strips,
            delay=DelayBus(float(v["delay_seconds"]), float(v["delay_feedback"])) if v["delay_on"] else None,
            reverb=ReverbBus(float(v["reverb_room_size"]), float(v["reverb_damping"]), float(v["reverb_width"]))
            if v["reverb_on"] else None,
            master=MasterBus(eq=_bands(self.master_eq_kinds, v["master_eq_frequency_hz"], v["master_eq_gain_db"],
                                       v["master_eq_q"], v["master_eq_on"]),
                             compressor=master_compressor, limiter=limiter),
            loudness_lufs=float(v["loudness_lufs"]),
        )


_STATIC = ("eq_kinds", "master_eq_kinds")


def _slot_kinds(eqs: Sequence[tuple[EqBand, ...]]) -> tuple[str, ...]:
    """EQ slots that hold every band of every one of ``eqs``: per kind, the most any one has."""
    for eq in eqs:
        for band in eq:
            if band.kind not in EQ_KINDS:
                raise ValueError(f"unknown EQ band kind {band.kind!r}; use one of {list(EQ_KINDS)}")
    counts = {kind: max((sum(b.kind == kind for b in eq) for eq in eqs), default=0) for kind in EQ_KINDS}
    return tuple(kind for kind in EQ_KINDS for _ in range(counts[kind]))


def _eq_slots(eq: tuple[EqBand, ...], kinds: tuple[str, ...], prefix: str = "eq") -> dict[str, list]:
    """One EQ's bands in the slots ``kinds``: ``{prefix_frequency_hz: [...], ..., prefix_on: [...]}``."""
    slots: list[EqBand | None] = [None] * len(kinds)
    for band in eq:
        slot = next(i for i, kind in enumerate(kinds) if kind == band.kind and slots[i] is None)
        slots[slot] = band
    keys = ("frequency_hz", "gain_db", "q")
    out = {f"{prefix}_{key}": [_ABSENT[f"{prefix}_{key}"] if b is None else float(getattr(b, key)) for b in slots]
           for key in keys}
    out[f"{prefix}_on"] = [b is not None for b in slots]
    return out


def _bands(kinds: tuple[str, ...], frequency_hz: list, gain_db: list, q: list, on: list) -> tuple[EqBand, ...]:
    return tuple(EqBand(kind, float(f), float(g), float(w))
                 for kind, f, g, w, present in zip(kinds, frequency_hz, gain_db, q, on) if present)


def _strip_rows(strip: ChannelStrip, style: MixStyle, eq_kinds: tuple[str, ...]) -> dict:
    """One strip's per-track fields (scalars; EQ lists) and presence masks."""
    def value(key: str, setting) -> float:
        return _ABSENT[key] if setting is None else float(setting)

    c = strip.compressor
    rows: dict = {"fader_db": float(strip.fader_db), "pan": float(strip.pan)}
    for key in ("width", "highpass_hz", "lowpass_hz", "saturation_drive_db"):
        rows[key] = value(key, getattr(strip, key))
        rows[key.removesuffix("_hz").removesuffix("_drive_db") + "_on"] = getattr(strip, key) is not None
    for key in COMPRESSOR_FIELDS:
        rows[f"compressor_{key}"] = value(f"compressor_{key}", None if c is None else getattr(c, key))
    rows["compressor_on"] = c is not None
    for bus, key in ((style.delay, "delay_send"), (style.reverb, "reverb_send")):
        setting = getattr(strip, f"{key}_db")
        rows[f"{key}_db"] = value(f"{key}_db", setting)
        rows[f"{key}_on"] = setting is not None and bus is not None  # a send without its bus is not rendered
    rows.update(_eq_slots(strip.eq, eq_kinds))
    return rows


def _bus_rows(style: MixStyle, master_eq_kinds: tuple[str, ...]) -> dict:
    """The buses', master's and loudness fields of one song (scalars; master EQ lists)."""
    rows: dict = {}

    def put(key: str, value) -> None:
        rows[key] = _ABSENT[key] if value is None else float(value)

    delay, reverb, master = style.delay, style.reverb, style.master
    put("delay_seconds", delay and delay.delay_seconds)
    put("delay_feedback", delay and delay.feedback)
    rows["delay_on"] = delay is not None
    put("reverb_room_size", reverb and reverb.room_size)
    put("reverb_damping", reverb and reverb.damping)
    put("reverb_width", reverb and reverb.width)
    rows["reverb_on"] = reverb is not None
    rows.update(_eq_slots(master.eq, master_eq_kinds, prefix="master_eq"))
    for key in COMPRESSOR_FIELDS:
        put(f"master_compressor_{key}", master.compressor and getattr(master.compressor, key))
    rows["master_compressor_on"] = master.compressor is not None
    limiter = master.limiter
    put("limiter_drive_db", limiter and limiter.drive_db)
    put("limiter_ceiling_db", limiter and limiter.ceiling_db)
    put("limiter_release_ms", limiter and limiter.release_ms)
    rows["limiter_on"] = limiter is not None
    rows["loudness_lufs"] = float(style.loudness_lufs)
    return rows


# ----------------------------------------------------------------------------- rendering


def _fft_length(samples: int, tail_samples: int) -> int:
    return 1 << max(1, math.ceil(math.log2(samples + max(tail_samples, 1))))


def _filter(audio: Tensor, response: Callable[[Tensor], Tensor], n_fft: int, sample_rate: int) -> Tensor:
    """``audio`` through the linear filter whose complex response at given frequencies ``response`` gives.

    Shape:
        ``(..., channels, samples)``; the response ``(..., bins)`` (one per leading index, shared by the channels).
    """
    frequencies = rfft_frequencies(n_fft, sample_rate, device=audio.device)
    spectrum = torch.fft.rfft(audio, n=n_fft)
    spectrum = spectrum * response(frequencies).to(spectrum.dtype).unsqueeze(-2)
    return torch.fft.irfft(spectrum, n=n_fft)[..., : audio.shape[-1]]


def _eq_response(kinds: tuple[str, ...], frequency_hz: Tensor, gain_db: Tensor, q: Tensor, on: Tensor,
                 frequencies: Tensor, sample_rate: int) -> Tensor:
    """Product of the present bands' responses. Settings ``(..., bands)`` -> ``(..., bins)`` complex128."""
    response = torch.ones(frequency_hz.shape[:-1] + frequencies.shape, dtype=torch.complex128,
                          device=frequencies.device)
    for i, kind in enumerate(kinds):
        if not bool(on[..., i].any()):
            continue
        band = eq_band_response(kind, frequency_hz[..., i].double(), gain_db[..., i].double(), q[..., i].double(),
                                frequencies, sample_rate)
        response = response * torch.where(on[..., i].unsqueeze(-1), band, torch.ones_like(band))
    return response


def _strip_filter_response(t: StyleTensors, frequencies: Tensor, sample_rate: int) -> Tensor:
    """Butterworth (HP, LP or the band-pass of both, as ``primitives.butterworth``) times the EQ.
    Shape ``(batch, tracks, bins)`` complex128."""
    hp, lp = t.highpass_hz.double(), t.lowpass_hz.double()
    hp_on, lp_on = t.highpass_on.unsqueeze(-1), t.lowpass_on.unsqueeze(-1)
    butter = torch.ones(hp.shape + frequencies.shape, dtype=torch.complex128, device=frequencies.device)
    # the three designs primitives.butterworth chooses between, each computed only if a strip uses it
    for use, highpass, lowpass in ((hp_on & lp_on, hp, lp), (hp_on & ~lp_on, hp, None), (~hp_on & lp_on, None, lp)):
        if bool(use.any()):
            butter = torch.where(use, butterworth_response(highpass, lowpass, frequencies, sample_rate, FILTER_ORDER),
                                 butter)
    eq = _eq_response(t.eq_kinds, t.eq_frequency_hz, t.eq_gain_db, t.eq_q, t.eq_on, frequencies, sample_rate)
    return butter * eq


def _linear_tail_samples(t: StyleTensors, sample_rate: int, tail_db: float) -> int:
    """Samples after which the strips' and master's filters have decayed by ``tail_db``.

    A biquad's slowest pole has radius about ``1 - pi f / (fs Q)``; the tail of a pole of radius
    ``r`` falls ``tail_db`` in ``tail_db / (-20 log10 r)`` samples (the lowest present frequency
    and the highest Q, both for every filter: a bound).
    """
    lowest, q = 1e9, 0.7071
    for frequency, on in ((t.highpass_hz, t.highpass_on), (t.lowpass_hz, t.lowpass_on),
                          (t.eq_frequency_hz, t.eq_on), (t.master_eq_frequency_hz, t.master_eq_on)):
        if bool(on.any()):
            lowest = min(lowest, float(frequency.detach()[on].min()))
    for qs, on in ((t.eq_q, t.eq_on), (t.master_eq_q, t.master_eq_on)):
        if bool(on.any()):
            q = max(q, float(qs.detach()[on].max()))
    if lowest == 1e9:
        return 0
    radius = 1.0 - math.pi * max(lowest, 2.0) / (sample_rate * max(q, 0.5))
    return int(tail_db / (-20.0 * math.log10(radius))) + 1


def _bus_tail_samples(t: StyleTensors, sample_rate: int, tail_db: float) -> tuple[int, int]:
    """Samples after which the delay and reverb buses' responses have decayed by ``tail_db``
    (delay: echoes ``feedback ** k``; reverb: the longest comb's loop gain ``0.28 room + 0.7`` per pass)."""
    delay = 0
    if bool(t.delay_on.any()):
        seconds = float(t.delay_seconds.detach()[t.delay_on].max())
        feedback = float(t.delay_feedback.detach()[t.delay_on].abs().max())
        echoes = 1 + (math.ceil(tail_db / (-20.0 * math.log10(feedback))) if feedback > 0 else 0)
        delay = int(seconds * sample_rate + 1) * echoes
    reverb = 0
    if bool(t.reverb_on.any()):
        combs, allpasses = freeverb_lengths(sample_rate)
        loop = 0.28 * float(t.reverb_room_size.detach()[t.reverb_on].max()) + 0.7
        reverb = int(max(map(max, combs)) * tail_db / (-20.0 * math.log10(min(loop, 1.0 - 1e-6))))
        reverb += sum(map(max, allpasses)) * math.ceil(tail_db / (20.0 * math.log10(2.0)))
    return delay, reverb


def bus_fft_lengths(t: StyleTensors, samples: int, sample_rate: int, tail_db: float = TAIL_DB) -> tuple[int, int]:
    """FFT lengths of the delay and reverb buses for a clip of ``samples``: a power of two covering
    the clip plus the bus response's tail down to ``tail_db`` (the rest wraps onto the clip)."""
    delay_tail, reverb_tail = _bus_tail_samples(t, sample_rate, tail_db)
    return _fft_length(samples, delay_tail), _fft_length(samples, reverb_tail)


def _where_rows(mask: Tensor, fn: Callable[..., Tensor], audio: Tensor, *settings: Tensor) -> Tensor:
    """``fn(audio[mask], *settings[mask])`` where ``mask``, ``audio`` elsewhere (only the masked rows are computed).

    Shape:
        ``mask`` ``(*lead)``, ``audio`` ``(*lead, 2, samples)``, settings ``(*lead)``.
    """
    if not bool(mask.any()):
        return audio
    index = mask.nonzero(as_tuple=True)
    return audio.index_put(index, fn(audio[index], *(s[index] for s in settings)))


def render_strips(tracks: Tensor, t: StyleTensors, sample_rate: int, tail_db: float = TAIL_DB) -> Tensor:
    """Every track's channel strip, up to and including the pan (the sends are taken from it).

    Shape:
        ``(batch, tracks, 2, samples)`` -> same; ``t`` batched.
    """
    samples = tracks.shape[-1]
    n_fft = _fft_length(samples, _linear_tail_samples(t, sample_rate, tail_db))
    audio = _filter(tracks, lambda f: _strip_filter_response(t, f, sample_rate), n_fft, sample_rate)
    strip_db = rms_level_db(audio)[0]  # the strip's RMS after the EQ: what the relative settings refer to
    live = t.track_mask & (audio.detach().abs().amax(dim=(-2, -1)) > 0)
    audio = _where_rows(
        t.compressor_on & live,
        lambda x, *s: channel_compressor(x, *s, sample_rate=sample_rate),
        audio, t.compressor_threshold_db, t.compressor_ratio, t.compressor_attack_ms, t.compressor_release_ms,
        t.compressor_makeup_db,
    )
    # the saturator is gain-staged from the strip's level before the compressor, as the reference does
    audio = _where_rows(t.saturation_on & live, saturation, audio, t.saturation_drive_db, strip_db)
    audio = audio * db_to_gain(t.fader_db)[..., None, None]
    width = torch.where(t.width_on, t.width, torch.ones_like(t.width))[..., None]
    mid = 0.5 * (audio[..., 0, :] + audio[..., 1, :])
    side = 0.5 * (audio[..., 0, :] - audio[..., 1, :]) * width
    audio = torch.stack([mid + side, mid - side], dim=-2)
    angle = (t.pan.clamp(-1.0, 1.0) + 1.0) * (math.pi / 4.0)
    pan = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1) * math.sqrt(2.0)
    return audio * pan[..., None]


def _to_stems(audio: Tensor, t: StyleTensors, gain: Tensor | None = None) -> Tensor:
    """Sum tracks into their stem classes (padded tracks dropped), each scaled by ``gain``.
    ``(batch, tracks, 2, n)`` -> ``(batch, 4, 2, n)``."""
    weights = torch.nn.functional.one_hot(t.stem, len(STEMS)).to(audio.dtype) * t.track_mask.unsqueeze(-1)
    if gain is not None:
        weights = weights * gain.unsqueeze(-1)
    return torch.einsum("btk,btcn->bkcn", weights, audio)


def render_buses(sends_delay: Tensor, sends_reverb: Tensor, t: StyleTensors, sample_rate: int,
                 tail_db: float = TAIL_DB) -> Tensor:
    """The delay and reverb returns of each stem's sends (zero where a bus is absent), summed.

    Shape:
        sends ``(batch, 4, 2, samples)`` each -> ``(batch, 4, 2, samples)``.
    """
    samples = sends_delay.shape[-1]
    delay_fft, reverb_fft = bus_fft_lengths(t, samples, sample_rate, tail_db)
    out = torch.zeros_like(sends_delay)
    if bool(t.delay_on.any()):
        n_fft = delay_fft

        def delay(f: Tensor) -> Tensor:
            response = feedback_delay_response(t.delay_seconds.double(), t.delay_feedback.double(), f, sample_rate)
            return response.unsqueeze(1)  # (batch, 1 stem axis, bins): the same for every stem

        out = out + _filter(sends_delay, delay, n_fft, sample_rate) * t.delay_on[:, None, None, None]
    if bool(t.reverb_on.any()):
        n_fft = reverb_fft
        frequencies = rfft_frequencies(n_fft, sample_rate, device=sends_reverb.device)
        response = freeverb_response(t.reverb_room_size.double(), t.reverb_damping.double(),
                                     t.reverb_width.double(), frequencies, sample_rate)[..., 0, :]  # (batch, out, bins)
        mono = torch.fft.rfft(sends_reverb.sum(dim=-2), n=n_fft)  # the reverb hears L + R
        wet = torch.fft.irfft(mono.unsqueeze(-2) * response.to(mono.dtype).unsqueeze(1), n=n_fft)
        out = out + wet[..., :samples] * t.reverb_on[:, None, None, None]
    return out


def render_master(stems: Tensor, t: StyleTensors, sample_rate: int, tail_db: float = TAIL_DB) -> Tensor:
    """Master EQ, linked bus compressor, limiter and loudness on the stems (gains from their sum).

    Shape:
        ``(batch, 4, 2, samples)`` -> same.
    """
    samples = stems.shape[-1]
    if bool(t.master_eq_on.any()):
        n_fft = _fft_length(samples, _linear_tail_samples(t, sample_rate, tail_db))

        def master_eq(f: Tensor) -> Tensor:
            eq = _eq_response(t.master_eq_kinds, t.master_eq_frequency_hz, t.master_eq_gain_db, t.master_eq_q,
                              t.master_eq_on, f, sample_rate)
            return eq.unsqueeze(1)  # the same for every stem

        stems = _filter(stems, master_eq, n_fft, sample_rate)
    gain = torch.ones(stems.shape[0], samples, dtype=stems.dtype, device=stems.device)
    compressed = t.master_compressor_on & (stems.detach().abs().amax(dim=(1, 2, 3)) > 0)
    if bool(compressed.any()):
        index = compressed.nonzero(as_tuple=True)
        settings = [getattr(t, f"master_compressor_{f}")[index] for f in COMPRESSOR_FIELDS]
        gain = gain.index_put(index, bus_compressor_gain(stems[index].sum(dim=1), *settings, sample_rate))
    stems = stems * gain[:, None, None, :]
    peak = stems.sum(dim=1).abs().amax(dim=(-2, -1))
    limited = t.limiter_on & (peak.detach() > 0)
    if bool(limited.any()):
        index = limited.nonzero(as_tuple=True)
        drive = db_to_gain(t.limiter_ceiling_db[index] + t.limiter_drive_db[index]) / peak[index]
        driven = stems[index] * drive[:, None, None, None]
        curve = limiter_gain(driven.sum(dim=1), t.limiter_ceiling_db[index], t.limiter_release_ms[index], sample_rate)
        stems = stems.index_put(index, driven * curve[:, None, None, :])
    loudness = loudness_lufs(stems.sum(dim=1), sample_rate)
    finite = torch.isfinite(loudness)
    gain_db = torch.where(finite, t.loudness_lufs - torch.where(finite, loudness, torch.zeros_like(loudness)), 0.0)
    return stems * db_to_gain(gain_db)[:, None, None, None]


def _check_bus_ranges(t: StyleTensors) -> None:
    """The buses' recursions are stable only in range: a clear error (a fit that left the range), not NaN."""
    checks = (("delay_feedback", t.delay_on, 0.0, 1.0, False), ("reverb_room_size", t.reverb_on, 0.0, 1.0, True),
              ("reverb_damping", t.reverb_on, 0.0, 1.0, True), ("reverb_width", t.reverb_on, 0.0, 1.0, True))
    for name, on, low, high, closed in checks:
        value = getattr(t, name).detach()[on]
        inside = (value >= low) & ((value <= high) if closed else (value < high))
        if not bool(inside.all()):
            bound = "]" if closed else ")"
            raise ValueError(f"style tensors: {name} must lie in [{low:g}, {high:g}{bound} where its bus is present, "
                             f"got {value[~inside].tolist()} (clamp fitted settings into the space's ranges)")


def render_style(tracks: Tensor, tensors: StyleTensors, sample_rate: int, tail_db: float = TAIL_DB) -> Tensor:
    """Mix tracks with a style in torch, as :func:`~mixrep.styles.mix_style.render_mix` does with pedalboard.

    Args:
        tracks: dry tracks (a mono track is ``L = R``); padded tracks are ignored
            (``tensors.track_mask``).
        tensors: the style laid out for these tracks (:meth:`StyleTensors.from_style` /
            :meth:`~StyleTensors.from_styles`); settings that require grad get gradients.
        sample_rate: Hz.
        tail_db: the linear processors' tails are kept until they have decayed this much (sets
            the FFT lengths; the rest wraps around onto the clip at that level).

    Returns:
        Four stems summing to the styled mix at the loudness target (a silent input stays silent).

    Raises:
        ValueError: shapes disagree with the tensors, non-finite input, clip under 0.4 s, a bus
            setting out of its range (delay feedback in [0, 1), reverb settings in [0, 1]).
        MixrepError: the style produced non-finite samples.

    Shape:
        ``(tracks, 2, samples)`` with unbatched tensors, or ``(batch, tracks, 2, samples)`` with
        batched ones -> ``(..., stems=4, 2, samples)``.
    """
    batched = tensors.batched
    if tracks.ndim != (4 if batched else 3) or tracks.shape[-2] != CHANNELS \
            or tuple(tracks.shape[:-2]) != tuple(tensors.track_mask.shape):
        raise ValueError(f"tracks of shape {tuple(tracks.shape)} do not fit style tensors laid out for "
                         f"{tuple(tensors.track_mask.shape)} tracks: expected "
                         f"{(*tensors.track_mask.shape, CHANNELS, 'samples')}")
    if tracks.shape[-1] < int(0.4 * sample_rate):
        raise ValueError(f"loudness needs at least 0.4 s of audio, got {tracks.shape[-1] / sample_rate:.3f} s")
    if not bool(torch.isfinite(tracks).all()):
        raise ValueError("cannot mix non-finite tracks (NaN or inf); check the reader output")
    _check_bus_ranges(tensors)
    t = tensors if batched else tensors.map(lambda x: x.unsqueeze(0))
    audio = tracks if batched else tracks.unsqueeze(0)
    processed = render_strips(audio if audio.is_floating_point() else audio.float(), t, sample_rate, tail_db)
    stems = _to_stems(processed, t)

    def send_gain(db: Tensor, on: Tensor) -> Tensor:
        return torch.where(on, db_to_gain(db), torch.zeros_like(db))

    stems = stems + render_buses(_to_stems(processed, t, send_gain(t.delay_send_db, t.delay_send_on)),
                                 _to_stems(processed, t, send_gain(t.reverb_send_db, t.reverb_send_on)),
                                 t, sample_rate, tail_db)
    stems = render_master(stems, t, sample_rate, tail_db)
    if not bool(torch.isfinite(stems).all()):
        raise MixrepError("the style tensors produced non-finite samples; check the settings' ranges")
    return stems if batched else stems.squeeze(0)
