"""The embedded default corpus: multitrack songs synthesised from a seed.

Every song is generated with numpy alone, in the spirit of DDSP (Engel et al., "DDSP:
Differentiable Digital Signal Processing", ICLR 2020): melodic parts are *harmonic oscillators*
(a fundamental-frequency curve, a loudness envelope and a per-harmonic amplitude distribution
that sets the timbre) and percussive parts are *filtered noise* plus pitched decays.

- drums: kick = sine with an exponential pitch sweep and decay (+ click), snare = band-passed
  noise burst + a decaying tone, hats = high-passed noise (closed and open).
- bass: a harmonic oscillator with ADSR envelope following the chord roots on a per-song rhythm.
- other: chords as a pad, rhythmic stabs or an arpeggio (one oscillator per chord voice).
- vocals: a sung-like lead: legato melody with glide, delayed vibrato, per-note vowel formants
  weighting the harmonics, and a little breath noise.

The notes come from :func:`mixrep.corpora.score.compose_song` (tempo, key, scale, chord
progression, rhythm patterns, arrangement: the same songs the soundfont corpus renders with sampled
instruments); this module draws each song's timbres and its baseline placement (pan, width, level
per stem), so songs differ in their own baseline mix. A song depends on ``(config, index)`` only,
never on the order of generation.

Tracks. A song is a multitrack of :data:`TRACKS`: ``kick``, ``snare``, ``hats`` (drums), ``bass``,
``chords`` (other) and ``lead`` (vocals), each already placed in the stereo field, so the tracks of
a stem class sum to that stem exactly.

Shape:
    ``SynthSong.tracks`` is ``(tracks=6, channels=2, samples)`` and ``SynthSong.stems``
    ``(stems=4, channels=2, samples)``, float32, ``samples = round(song_seconds * sample_rate)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import signal

from mixrep.audio.io import check_sample_rate, write_audio
from mixrep.audio.multitrack import InstrumentTrack, Multitrack, slice_span
from mixrep.audio.primitives import pan_gains
from mixrep.audio.stems import sum_to_stems
from mixrep.constants import SAMPLE_RATE, STEMS
from mixrep.corpora.score import Note, Part, Score, compose_song
from mixrep.errors import DatasetError
from mixrep.files import atomic_write_text
from mixrep.tracks import SPLITS, SkipLog, Track

VOWEL_FORMANTS_HZ: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
"""First three formants in Hz (Peterson & Barney 1952 averages) used to weight vocal harmonics."""

TRACKS: tuple[tuple[str, str], ...] = (
    ("kick", "drums"), ("snare", "drums"), ("hats", "drums"), ("bass", "bass"), ("chords", "other"), ("lead", "vocals"),
)
"""``(track name, stem class)`` of every synthetic song, in track order."""

ROLE_STEMS: dict[str, str] = {"drums": "drums", "bass": "bass", "chords": "other", "lead": "vocals"}
"""Stem class of each arrangement role of :mod:`mixrep.corpora.score` in the synthetic corpus."""


@dataclass(frozen=True)
class SynthConfig:
    """What the synthetic corpus generates.

    Attributes:
        num_songs: number of songs in the corpus.
        seed: corpus seed; song ``i`` is generated from ``(seed, i)``.
        song_seconds: length of every song in seconds (at least two clips of the training
            clip length should fit).
        sample_rate: output rate in Hz.
        peak_dbfs: peak level of the sum of the stems in dBFS (<= 0, so the mix never clips).
        tempo_bpm_range: tempo range in beats per minute, drawn uniformly per song.
    """

    num_songs: int = 64
    seed: int = 0
    song_seconds: float = 16.0
    sample_rate: int = SAMPLE_RATE
    peak_dbfs: float = -1.0
    tempo_bpm_range: tuple[float, float] = (80.0, 150.0)

    def __post_init__(self) -> None:
        if int(self.num_songs) != self.num_songs or self.num_songs < 1:
            raise ValueError(f"num_songs must be a positive integer, got {self.num_songs!r}")
        if not 1.0 <= self.song_seconds <= 3600.0:
            raise ValueError(f"song_seconds must be between 1 and 3600 s, got {self.song_seconds!r}")
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        if not -60.0 <= self.peak_dbfs <= 0.0:
            raise ValueError(f"peak_dbfs must be in [-60, 0] dBFS so the mix cannot clip, got {self.peak_dbfs!r}")
        low, high = self.tempo_bpm_range
        if not 30.0 <= low <= high <= 300.0:
            raise ValueError(f"tempo_bpm_range must satisfy 30 <= low <= high <= 300 bpm, got {self.tempo_bpm_range!r}")
        object.__setattr__(self, "tempo_bpm_range", (float(low), float(high)))

    @property
    def num_samples(self) -> int:
        """Samples per song."""
        return int(round(self.song_seconds * self.sample_rate))


@dataclass
class SynthSong:
    """One generated song.

    Attributes:
        song_id: ``synth-NNNN`` (the index, zero-padded).
        tracks: ``(tracks, channels=2, samples)`` float32, in :data:`TRACKS` order.
        metadata: JSON-serialisable description (tempo_bpm, key, scale, seed, sections, placement...).
    """

    song_id: str
    tracks: np.ndarray
    metadata: dict = field(default_factory=dict)

    @cached_property
    def stems(self) -> np.ndarray:
        """``(stems=4, channels=2, samples)``: the tracks summed by stem class."""
        return sum_to_stems(self.tracks, [stem for _, stem in TRACKS])

    @property
    def mix(self) -> np.ndarray:
        """The baseline mixture, ``(channels=2, samples)``: the sum of the tracks."""
        return self.stems.sum(axis=0)


def song_id(index: int) -> str:
    """Identifier of song ``index``: ``synth-0007``."""
    return f"synth-{index:04d}"


# ----------------------------------------------------------------------------------------------
# DSP building blocks (all vectorised over samples)
# ----------------------------------------------------------------------------------------------


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """Equal-tempered frequency in Hz of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * np.power(2.0, (np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


@dataclass
class _Line:
    """A monophonic note sequence: onsets and gates in samples, pitches in MIDI, velocities 0..1."""

    onsets: np.ndarray
    gates: np.ndarray
    midi: np.ndarray
    velocity: np.ndarray

    @classmethod
    def from_notes(cls, notes: list[tuple[int, int, float, float]], num_samples: int) -> _Line:
        notes = sorted(n for n in notes if 0 <= n[0] < num_samples and n[1] > 0)
        if not notes:
            return cls(*(np.zeros(0) for _ in range(4)))
        arr = np.asarray(notes, dtype=np.float64)
        return cls(arr[:, 0].astype(np.int64), *(arr[:, i].astype(np.float32) for i in (1, 2, 3)))

    def __len__(self) -> int:
        return len(self.onsets)


def _note_index(line: _Line, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: index of the sounding (last started) note and samples since its onset.

    Samples before the first onset get note 0 with a negative time (silent in the envelope).
    """
    first = int(line.onsets[0])
    bounds = np.append(line.onsets, num_samples)
    index = np.repeat(np.arange(len(line), dtype=np.int64), np.diff(bounds))
    index = np.concatenate([np.zeros(first, dtype=np.int64), index])
    elapsed = np.arange(num_samples, dtype=np.float32) - line.onsets[index].astype(np.float32)
    return index, elapsed


def _adsr(
    elapsed: np.ndarray,
    gate: np.ndarray,
    attack: float,
    decay: float,
    sustain: float,
    release: float,
) -> np.ndarray:
    """Linear-attack, exponential decay/release ADSR envelope.

    Args:
        elapsed: samples since the note onset, per sample (negative = before the note).
        gate: note length in samples, per sample.
        attack, decay, release: times in samples (decay and release are exponential time constants).
        sustain: sustain level in ``[0, 1]``.
    """

    def held(t: np.ndarray) -> np.ndarray:
        rise = np.clip(t / attack, 0.0, 1.0)
        fall = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
        return np.where(t < attack, rise, fall)

    t = np.minimum(elapsed, gate)
    level = held(t)
    after = np.maximum(elapsed - gate, 0.0)
    env = level * np.exp(-after / release)
    return np.where(elapsed < 0, 0.0, env).astype(np.float32)


def _smooth(x: np.ndarray, time_constant_samples: float) -> np.ndarray:
    """One-pole low-pass (exponential smoothing) with the given time constant in samples."""
    a = np.float32(math.exp(-1.0 / max(time_constant_samples, 1.0)))
    x = np.asarray(x, dtype=np.float32)
    zi = np.asarray([x[0] * a if len(x) else 0.0], dtype=np.float32)
    y, _ = signal.lfilter(np.asarray([1.0 - a], np.float32), np.asarray([1.0, -a], np.float32), x, zi=zi)
    return y


def _harmonic_oscillator(
    f0_hz: np.ndarray,
    amplitude: np.ndarray,
    harmonic_weights: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    note_index: np.ndarray | None = None,
) -> np.ndarray:
    """Additive synthesis: ``amplitude * sum_k w_k sin(k * phase)`` (DDSP's harmonic synthesiser).

    Harmonic ``k`` is computed from the first two with the Chebyshev recurrence
    ``sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x)``, so only one sine and one cosine are
    evaluated per sample. Harmonics that could pass ``0.45 * sample_rate`` are dropped (no aliasing).

    Args:
        f0_hz: fundamental frequency per sample, in Hz.
        amplitude: linear amplitude per sample.
        harmonic_weights: ``(harmonics,)`` fixed distribution, or ``(notes, harmonics)`` with
            ``note_index`` selecting a row per sample. Rows are normalised to sum to one.
        sample_rate: in Hz.

    Shape:
        f0_hz, amplitude, note_index: ``(samples,)``. Returns ``(samples,)`` float32.
    """
    weights = np.atleast_2d(np.asarray(harmonic_weights, dtype=np.float32))
    max_harmonics = max(1, int(0.45 * sample_rate / max(float(f0_hz.max()), 1.0)))
    weights = weights[:, :max_harmonics]
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-8)
    phase = np.cumsum(f0_hz * (2.0 * np.pi / sample_rate), dtype=np.float64) + rng.uniform(0, 2 * np.pi)
    phase = np.mod(phase, 2.0 * np.pi).astype(np.float32)
    columns = np.ascontiguousarray(weights.T)  # (harmonics, notes)
    out = np.empty_like(phase)
    # Clenshaw summation: sum_k w_k sin(k x) = b_1 sin(x) with b_k = w_k + 2 cos(x) b_{k+1} - b_{k+2},
    # three in-place passes per harmonic over chunks small enough to stay in the CPU cache.
    chunk = 16_384
    b_next, b_next2, tmp = (np.empty(chunk, dtype=np.float32) for _ in range(3))
    for start in range(0, len(phase), chunk):
        x = phase[start : start + chunk]
        m = len(x)
        two_cos = np.cos(x)
        two_cos *= 2.0
        b1, b2, t = b_next[:m], b_next2[:m], tmp[:m]
        b1.fill(0.0)
        b2.fill(0.0)
        notes = None if note_index is None else note_index[start : start + chunk]
        for k in range(columns.shape[0] - 1, -1, -1):
            np.multiply(two_cos, b1, out=t)
            t -= b2
            t += columns[k, 0] if notes is None else np.take(columns[k], notes)
            b1, b2, t = t, b1, b2
        np.sin(x, out=out[start : start + m])
        out[start : start + m] *= b1
    out *= amplitude
    return out


def _rolloff_weights(num_harmonics: int, rolloff: float, odd_even_ratio: float = 1.0) -> np.ndarray:
    """Harmonic amplitudes ``k ** -rolloff``; even harmonics scaled by ``odd_even_ratio`` (timbre)."""
    k = np.arange(1, num_harmonics + 1, dtype=np.float32)
    weights = k ** (-rolloff)
    weights[1::2] *= odd_even_ratio
    return weights


def _render_line(
    line: _Line,
    num_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    weights: np.ndarray,
    adsr_seconds: tuple[float, float, float, float],
    glide_seconds: float = 0.0,
    vibrato: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Render a monophonic line with a harmonic oscillator.

    Args:
        weights: ``(harmonics,)`` or ``(notes, harmonics)`` per-note harmonic distribution.
        adsr_seconds: (attack_s, decay_s, sustain_level, release_s).
        glide_seconds: portamento time constant on log-frequency (0 = none).
        vibrato: (rate_hz, depth_cents, delay_s) delayed vibrato, or None.

    Shape:
        Returns ``(samples,)`` float32.
    """
    if len(line) == 0:
        return np.zeros(num_samples, dtype=np.float32)
    index, elapsed = _note_index(line, num_samples)
    attack, decay, sustain, release = adsr_seconds
    env = _adsr(
        elapsed,
        line.gates[index],
        attack * sample_rate,
        decay * sample_rate,
        sustain,
        release * sample_rate,
    )
    env *= line.velocity[index]
    env = _smooth(env, 0.002 * sample_rate)  # de-click note changes
    pitch = line.midi[index]
    if glide_seconds > 0:
        pitch = _smooth(pitch, glide_seconds * sample_rate)
    if vibrato is not None:
        rate_hz, depth_cents, delay_s = vibrato
        depth = np.clip((elapsed / sample_rate - delay_s) / 0.25, 0.0, 1.0) * (depth_cents / 100.0)
        t = np.arange(num_samples, dtype=np.float32) / sample_rate
        pitch = pitch + depth * np.sin(2.0 * np.pi * rate_hz * t + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    f0 = (440.0 * np.exp2((pitch - 69.0) / 12.0)).astype(np.float32)
    per_note = np.asarray(weights).ndim == 2
    # Synthesise only where the envelope is audible (> -100 dBFS): parts drop out for whole
    # sections and rest between phrases; phase jumps across silent gaps cannot be heard.
    audible = np.flatnonzero(env > 1e-5)
    out = np.zeros(num_samples, dtype=np.float32)
    if len(audible):
        out[audible] = _harmonic_oscillator(
            f0[audible], env[audible], weights, sample_rate, rng, index[audible] if per_note else None
        )
    return out


def _place(mono: np.ndarray, pan: float, width: float, delay_samples: int) -> np.ndarray:
    """Stereo placement of a mono source: mid/side widening with a delayed copy, then panning.

    ``L = m + width * d``, ``R = m - width * d`` with ``d`` the source delayed by ``delay_samples``
    (a decorrelated side signal), then constant-power pan.

    Shape:
        mono ``(samples,)`` -> ``(channels=2, samples)``.
    """
    side = np.zeros_like(mono)
    if width > 0 and delay_samples > 0:
        side[delay_samples:] = width * mono[:-delay_samples]
    left, right = pan_gains(pan)
    return np.stack([left * (mono + side), right * (mono - side)])


# ----------------------------------------------------------------------------------------------
# Song plan
# ----------------------------------------------------------------------------------------------


def _line(notes: tuple[Note, ...], sample_rate: int, num_samples: int, voice: int | None = None) -> _Line:
    """The notes (of one chord voice, if given) as a :class:`_Line` in samples."""
    return _Line.from_notes([
        (int(round(n.onset_seconds * sample_rate)), int(round(n.duration_seconds * sample_rate)), n.pitch, n.velocity)
        for n in notes if voice is None or n.voice == voice
    ], num_samples)


def _rolloff_timbre(rng: np.random.Generator, rolloff: tuple[float, float], odd_even: tuple[float, float],
                    harmonics: int) -> tuple[np.ndarray, dict]:
    r, o = rng.uniform(*rolloff), rng.uniform(*odd_even)
    return _rolloff_weights(harmonics, r, o), {"harmonic_rolloff": round(r, 3), "even_harmonic_gain": round(o, 3)}


# ----------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------


def _render_drums(score: Score, rng: np.random.Generator, sample_rate: int, num_samples: int, pan: float,
                  width: float) -> tuple[dict[str, np.ndarray], dict]:
    """Kick, snare, closed and open hat: one-shot models added at each hit, scaled by velocity.

    Returns the ``kick``, ``snare`` and ``hats`` (closed + open) tracks, each ``(2, samples)``.
    """
    sr, n = sample_rate, num_samples
    t = np.arange(int(0.5 * sr), dtype=np.float32) / sr
    kick_start_hz, kick_end_hz = rng.uniform(110, 200), rng.uniform(40, 62)
    sweep_s, kick_decay_s = rng.uniform(0.015, 0.05), rng.uniform(0.12, 0.3)
    kick_f = kick_end_hz + (kick_start_hz - kick_end_hz) * np.exp(-t / sweep_s)
    kick = np.sin(2 * np.pi * np.cumsum(kick_f) / sr) * np.exp(-t / kick_decay_s)
    kick[: int(0.003 * sr)] += 0.3 * rng.standard_normal(int(0.003 * sr))  # beater click
    drive = rng.uniform(1.0, 3.0)
    kick = np.tanh(drive * kick) / np.tanh(drive)

    snare_low_hz = rng.uniform(800, 2000)
    band = signal.butter(2, [snare_low_hz, min(snare_low_hz * rng.uniform(3, 6), 0.45 * sr)], "bandpass", fs=sr, output="sos")
    snare_decay_s, tone_hz = rng.uniform(0.06, 0.18), rng.uniform(160, 250)
    snare_noise = signal.sosfilt(band, rng.standard_normal(len(t))) * np.exp(-t / snare_decay_s)
    snare_tone = np.sin(2 * np.pi * tone_hz * t) * np.exp(-t / rng.uniform(0.03, 0.08))
    tone_mix = rng.uniform(0.2, 0.6)
    snare = (1 - tone_mix) * snare_noise / (np.abs(snare_noise).max() + 1e-9) + tone_mix * snare_tone

    hat_cutoff_hz = min(rng.uniform(6000, 9000), 0.4 * sr)
    high = signal.butter(4, hat_cutoff_hz, "highpass", fs=sr, output="sos")
    hat_noise = signal.sosfilt(high, rng.standard_normal(len(t)))
    hat_noise /= np.abs(hat_noise).max() + 1e-9
    closed_decay_s, open_decay_s = rng.uniform(0.015, 0.05), rng.uniform(0.12, 0.3)
    closed_hat = (hat_noise * np.exp(-t / closed_decay_s))[: int(7 * closed_decay_s * sr)]
    open_hat = hat_noise * np.exp(-t / open_decay_s)
    snare = snare[: int(7 * max(snare_decay_s, 0.08) * sr)]

    one_shots = {"kick": kick, "snare": snare, "closed_hat": closed_hat, "open_hat": open_hat}
    levels = {"kick": 1.0, "snare": rng.uniform(0.6, 0.9), "closed_hat": rng.uniform(0.15, 0.35), "open_hat": rng.uniform(0.15, 0.3)}
    hat_pan = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6)
    offsets = {"kick": 0.0, "snare": rng.uniform(-0.1, 0.1), "closed_hat": hat_pan, "open_hat": hat_pan}
    tracks = {name: np.zeros((2, n), dtype=np.float32) for name in ("kick", "snare", "hats")}
    for name, shot in one_shots.items():
        shot = shot.astype(np.float32) * levels[name]
        voice = np.zeros(n, dtype=np.float32)
        for note in score.part(name).notes:
            onset = int(round(note.onset_seconds * sr))
            length = min(len(shot), n - onset)
            if length > 0:
                voice[onset : onset + length] += note.velocity * shot[:length]
        left, right = pan_gains(pan + width * offsets[name])
        target = tracks["hats" if name.endswith("_hat") else name]
        target[0] += left * voice
        target[1] += right * voice
    meta = {
        "kick_steps": score.part("kick").details["steps"],
        "snare_steps": score.part("snare").details["steps"],
        "hat_grid_steps": score.part("closed_hat").details["grid_steps"],
        "kick_sweep_hz": [round(kick_start_hz, 1), round(kick_end_hz, 1)],
        "snare_tone_hz": round(tone_hz, 1),
        "hat_cutoff_hz": round(hat_cutoff_hz, 1),
    }
    return tracks, meta


def _render_bass(part: Part, rng: np.random.Generator, sample_rate: int, num_samples: int, pan: float,
                 width: float) -> tuple[np.ndarray, dict]:
    """Bass: a harmonic oscillator with a plucked ADSR."""
    weights, meta = _rolloff_timbre(rng, (1.0, 2.2), (0.2, 1.0), 12)
    adsr = (rng.uniform(0.003, 0.01), rng.uniform(0.1, 0.4), rng.uniform(0.4, 0.8), rng.uniform(0.03, 0.1))
    mono = _render_line(_line(part.notes, sample_rate, num_samples), num_samples, sample_rate, rng, weights, adsr)
    return _place(mono, pan, width, int(0.011 * sample_rate)), {"rhythm_steps": part.details["rhythm_steps"], **meta}


def _render_other(part: Part, rng: np.random.Generator, sample_rate: int, num_samples: int, pan: float,
                  width: float) -> tuple[np.ndarray, dict]:
    """Chords: one oscillator for an arpeggio, one per voice (spread across the image) otherwise."""
    sr, n = sample_rate, num_samples
    mode = part.details["mode"]
    weights, meta = _rolloff_timbre(rng, (0.7, 2.0), (0.3, 1.0), 10)
    out = np.zeros((2, n), dtype=np.float32)
    if mode == "arpeggio":
        adsr = (0.002, rng.uniform(0.08, 0.25), rng.uniform(0.0, 0.2), rng.uniform(0.05, 0.15))
        mono = _render_line(_line(part.notes, sr, n), n, sr, rng, weights, adsr)
        out += _place(mono, pan, width, int(0.017 * sr))
        detail = {"arpeggio_order": part.details["arpeggio_order"], "arpeggio_grid_steps": part.details["arpeggio_grid_steps"]}
    else:
        if mode == "pad":
            adsr = (rng.uniform(0.08, 0.4), rng.uniform(0.3, 1.0), rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.5))
        else:
            adsr = (0.004, rng.uniform(0.08, 0.2), rng.uniform(0.1, 0.4), rng.uniform(0.05, 0.12))
        for voice, spread in enumerate((-1.0, 0.0, 1.0)):
            mono = _render_line(_line(part.notes, sr, n, voice), n, sr, rng, weights, adsr)
            out += _place(mono, pan + 0.6 * width * spread, 0.0, 0)
        detail = {"rhythm_steps": part.details["rhythm_steps"]}
    return out, {"mode": mode, **meta, **detail}


def _render_vocals(part: Part, rng: np.random.Generator, sample_rate: int, num_samples: int, pan: float,
                   width: float) -> tuple[np.ndarray, dict]:
    """A sung-like lead: glide, delayed vibrato, a vowel per note (formants) and breath."""
    sr, n = sample_rate, num_samples
    line = _line(part.notes, sr, n)
    if len(line) == 0:
        return np.zeros((2, n), dtype=np.float32), {"notes": 0}
    # per-note harmonic weights: spectral tilt x formant resonances at k * f0
    num_harmonics = 20
    vowels = rng.choice(list(VOWEL_FORMANTS_HZ), size=len(line))
    vowel_table = np.asarray([VOWEL_FORMANTS_HZ[str(v)] for v in vowels])  # (notes, 3)
    harmonic_hz = midi_to_hz(line.midi)[:, None] * np.arange(1, num_harmonics + 1)  # (notes, H)
    bandwidth_hz = np.asarray([120.0, 180.0, 250.0])
    gains = np.asarray([1.0, 0.6, 0.3])
    resonance = (gains * np.exp(-0.5 * ((harmonic_hz[..., None] - vowel_table[:, None, :]) / bandwidth_hz) ** 2)).sum(-1)
    tilt = np.arange(1, num_harmonics + 1, dtype=np.float64) ** -rng.uniform(0.6, 1.2)
    weights = tilt * (0.08 + resonance)
    vibrato = (rng.uniform(4.8, 6.5), rng.uniform(20.0, 60.0), rng.uniform(0.1, 0.3))
    adsr = (rng.uniform(0.02, 0.06), rng.uniform(0.2, 0.6), rng.uniform(0.6, 0.9), rng.uniform(0.08, 0.2))
    glide_s = rng.uniform(0.015, 0.05)
    voiced = _render_line(line, n, sr, rng, weights, adsr, glide_seconds=glide_s, vibrato=vibrato)
    breath_band = signal.butter(2, [1500.0, min(6000.0, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    breath = signal.sosfilt(breath_band, rng.standard_normal(n).astype(np.float32)).astype(np.float32)
    breath *= _smooth(np.abs(voiced), 0.01 * sr) / (np.abs(breath).max() + 1e-9)  # follows the voice's loudness
    mono = voiced + rng.uniform(0.1, 0.3) * breath
    meta = {
        "vibrato_hz": round(vibrato[0], 2),
        "vibrato_cents": round(vibrato[1], 1),
        "glide_ms": round(1000 * glide_s, 1),
        "notes": len(line),
    }
    return _place(mono, pan, width, int(0.013 * sr)), meta


# ----------------------------------------------------------------------------------------------
# Songs
# ----------------------------------------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    flat = x.ravel()
    return math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1))


def synthesize_song(index: int, config: SynthConfig) -> SynthSong:
    """Generate song ``index`` of the corpus described by ``config``.

    The notes are :func:`~mixrep.corpora.score.compose_song` ``(config.seed, index)``; timbres and
    placement are drawn from a generator seeded with ``(config.seed, index, 1)``, so songs can be
    generated in any order or in parallel.

    Args:
        index: song number, ``0 <= index < config.num_songs``.
        config: corpus configuration.

    Returns:
        A :class:`SynthSong` whose tracks sum to a mix peaking at ``config.peak_dbfs``.

    Shape:
        ``tracks``: ``(tracks=6, channels=2, samples=config.num_samples)`` float32.
    """
    if not 0 <= index < config.num_songs:
        raise IndexError(f"song index {index} out of range for a corpus of {config.num_songs} songs")
    score = compose_song(config.seed, index, config.song_seconds, config.tempo_bpm_range)
    rng = np.random.default_rng([config.seed, index, 1])
    sr, n = config.sample_rate, config.num_samples

    # per-song baseline mix: pan in [-1, 1], width in [0, 1], level relative to -20 dBFS RMS
    placement = {
        "drums": (rng.uniform(-0.15, 0.15), rng.uniform(0.3, 1.0), rng.uniform(-3.0, 3.0)),
        "bass": (rng.uniform(-0.1, 0.1), rng.uniform(0.0, 0.2), rng.uniform(-4.0, 2.0)),
        "other": (rng.uniform(-0.5, 0.5), rng.uniform(0.2, 1.0), rng.uniform(-8.0, 0.0)),
        "vocals": (rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.4), rng.uniform(-3.0, 3.0)),
    }
    drums, drums_meta = _render_drums(score, rng, sr, n, *placement["drums"][:2])
    bass, bass_meta = _render_bass(score.part("bass"), rng, sr, n, *placement["bass"][:2])
    other, other_meta = _render_other(score.part("chords"), rng, sr, n, *placement["other"][:2])
    vocals, vocals_meta = _render_vocals(score.part("lead"), rng, sr, n, *placement["vocals"][:2])
    tracks = np.stack([drums["kick"], drums["snare"], drums["hats"], bass, other, vocals]).astype(np.float32)
    groups = [stem for _, stem in TRACKS]

    target_rms = 10.0 ** (-20.0 / 20.0)
    stems = sum_to_stems(tracks, groups)
    for i, name in enumerate(STEMS):
        rms = _rms(stems[i])
        if rms > 0:
            tracks[[g == name for g in groups]] *= np.float32(target_rms / rms * 10.0 ** (placement[name][2] / 20.0))
    stems = sum_to_stems(tracks, groups)
    peak = max(float(np.abs(stems.sum(axis=0)).max()), float(np.abs(stems).max()))
    tracks *= np.float32(10.0 ** (config.peak_dbfs / 20.0) / peak)

    metadata = {
        "song_id": song_id(index),
        "index": index,
        **score.metadata(),
        "seed": [config.seed, index],
        "sections": [{**s, "active": [ROLE_STEMS[r] for r in s["active"]]} for s in score.sections()],
        "placement": {
            name: {"pan": round(p, 3), "width": round(w, 3), "gain_db": round(g, 2)} for name, (p, w, g) in placement.items()
        },
        "parts": {"drums": drums_meta, "bass": bass_meta, "other": other_meta, "vocals": vocals_meta},
        "tracks": [{"name": name, "stem": stem} for name, stem in TRACKS],
    }
    return SynthSong(song_id(index), tracks, json.loads(json.dumps(metadata, default=_json_default)))


def synth_multitrack(index: int) -> Multitrack:
    """The track list of synthetic song ``index`` (the same for every song)."""
    instruments = {"kick": "kick drum", "snare": "snare drum", "hats": "hi-hat", "bass": "synth bass",
                   "chords": "synth chords", "lead": "synth voice"}
    return Multitrack(song_id(index), tuple(
        InstrumentTrack(name, instruments[name], stem, is_drum=stem == "drums") for name, stem in TRACKS))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


class SyntheticCorpus:
    """Random access to the songs of a :class:`SynthConfig`, generated on demand.

    The last ``cache_songs`` songs are kept (least recently used evicted), so memory stays at
    about ``cache_songs * 4 * 2 * samples * 4`` bytes (22.6 MB per 16 s song at 44.1 kHz).
    """

    def __init__(self, config: SynthConfig | None = None, cache_songs: int = 4) -> None:
        self.config = config or SynthConfig()
        if cache_songs < 1:
            raise ValueError(f"cache_songs must be >= 1, got {cache_songs}")
        self.cache_songs = cache_songs
        self._cache: OrderedDict[int, SynthSong] = OrderedDict()

    def __len__(self) -> int:
        return self.config.num_songs

    def __getitem__(self, index: int) -> SynthSong:
        if index < 0:
            index += len(self)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        song = synthesize_song(index, self.config)
        self._cache[index] = song
        while len(self._cache) > self.cache_songs:
            self._cache.popitem(last=False)
        return song

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def split_for_index(index: int, num_songs: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of song ``index`` among ``num_songs``.

    Songs are ranked by ``frac(index * golden_ratio)`` (a low-discrepancy sequence, so each split
    spreads over the whole index range); the first ``round(test_fraction * num_songs)`` are test,
    the next ``round(val_fraction * num_songs)`` are val (each at least one song when its fraction
    is positive and there are at least three songs), the rest train.
    """
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need val_fraction, test_fraction >= 0 with a sum < 1, got {val_fraction}, {test_fraction}")

    def count(fraction: float) -> int:
        k = int(round(fraction * num_songs))
        return max(k, 1) if fraction > 0 and num_songs >= 3 else k

    n_test, n_val = count(test_fraction), count(val_fraction)
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    rank = sorted(range(num_songs), key=lambda i: (i * golden) % 1.0).index(index)
    if rank < n_test:
        return "test"
    if rank < n_test + n_val:
        return "val"
    return "train"


class SyntheticSource:
    """The synthetic corpus as a :class:`~mixrep.audio.multitrack.MultitrackSource` (in memory, no files).

    Args:
        config: corpus configuration.
        val_fraction, test_fraction: share of songs in the val and test splits
            (see :func:`split_for_index`).
        cache_songs: songs kept in memory.
    """

    name = "synth"

    def __init__(
        self,
        config: SynthConfig | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_songs: int = 4,
    ) -> None:
        self.config = config or SynthConfig()
        self.sample_rate = self.config.sample_rate
        self.corpus = SyntheticCorpus(self.config, cache_songs=cache_songs)
        self.skipped = SkipLog()
        n = self.config.num_songs
        self._tracks = [
            Track(
                track_id=song_id(i),
                duration_seconds=self.config.num_samples / self.sample_rate,
                split=split_for_index(i, n, val_fraction, test_fraction),
                metadata={"index": i},
            )
            for i in range(n)
        ]

    def tracks(self, split: str | None = None) -> list[Track]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        return [t for t in self._tracks if split is None or t.split == split]

    def _index(self, track: Track) -> int:
        if not track.track_id.startswith("synth-"):
            raise DatasetError(f"track {track.track_id!r} is not a song of the synthetic corpus (ids look like synth-0007)")
        return int(track.track_id.split("-", 1)[1])

    def multitrack(self, track: Track) -> Multitrack:
        """The song's tracks: kick, snare, hats, bass, chords, lead (:data:`TRACKS`); nothing is synthesised."""
        return synth_multitrack(self._index(track))

    def read_tracks(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Slice ``(tracks=6, channels=2, samples)`` from the generated song, zero-padded past its end."""
        return slice_span(self.corpus[self._index(track)].tracks, start_seconds, duration_seconds, self.sample_rate)

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Slice ``(stems=4, channels=2, samples)`` from the generated song, zero-padded past its end."""
        return sum_to_stems(self.read_tracks(track, start_seconds, duration_seconds), [stem for _, stem in TRACKS])


def write_corpus(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    extension: str = ".flac",
) -> Path:
    """Write the corpus in the MUSDB-style stems-folder layout.

    ``<out_dir>/<song_id>/{drums,bass,other,vocals}.flac`` (16-bit FLAC) and
    ``<out_dir>/metadata.json`` holding the config and, per song, its metadata and split
    (:class:`~mixrep.datasets.sources.StemsFolderSource` reads both back).

    Returns:
        ``out_dir`` as a Path.
    """
    config = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    songs = {}
    for i in range(config.num_songs):
        song = synthesize_song(i, config)
        for name, stem in zip(STEMS, song.stems):
            write_audio(out / song.song_id / f"{name}{extension}", stem, config.sample_rate)
        songs[song.song_id] = {**song.metadata, "split": split_for_index(i, config.num_songs, val_fraction, test_fraction)}
    manifest = {"generator": "mixrep.corpora.synthetic", "config": dataclasses.asdict(config), "songs": songs}
    atomic_write_text(out / "metadata.json", json.dumps(manifest, indent=1))
    return out
