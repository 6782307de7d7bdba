"""A deterministic, non-neural style embedder and a generated test library.

``BandStereoEmbedder`` describes each clip by its spectral shape (mean-removed log energies in
log-spaced bands of the mid signal), its stereo width per broad band (side/mid energy ratio in dB)
and the left/right correlation: a legitimate handcrafted mixing-style descriptor.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_duration, read_segment, write_audio

SAMPLE_RATE = 16_000


class BandStereoEmbedder:
    """Handcrafted per-clip style embedding via numpy rfft.

    Args:
        bands: log-spaced bands between 50 Hz and 7.5 kHz.
        clip_seconds: clip length and hop in seconds.
        delay_seconds: sleep per file (to make builds slow enough to kill in tests).
    """

    def __init__(self, bands: int = 12, clip_seconds: float = 0.5, delay_seconds: float = 0.0,
                 salt: str = "") -> None:
        self.bands = bands
        self.clip_seconds = clip_seconds
        self.delay_seconds = delay_seconds
        self.embedding_dim = bands + 4 + 1
        self.model_hash = hashlib.sha1(f"band-stereo:{bands}:{clip_seconds}:{salt}".encode()).hexdigest()[:16]
        n = int(clip_seconds * SAMPLE_RATE)
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        edges = np.geomspace(50, 7500, bands + 1)
        self._band_of = np.digitize(freqs, edges) - 1  # -1 / bands: outside
        self._broad_of = np.minimum(np.maximum(self._band_of, 0) * 4 // bands, 3)
        self._window = np.hanning(n)

    def embed_file_clips(self, path) -> tuple[np.ndarray, np.ndarray]:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        seconds = audio_duration(path)
        offsets = np.arange(0.0, max(seconds - self.clip_seconds, 0.0) + 1e-9, self.clip_seconds)
        clips = [self._clip(read_segment(path, float(o), self.clip_seconds, SAMPLE_RATE)) for o in offsets]
        return np.stack(clips).astype(np.float32), offsets

    def _clip(self, audio: np.ndarray) -> np.ndarray:
        left, right = audio
        mid, side = (left + right) / 2, (left - right) / 2
        mid_power = np.abs(np.fft.rfft(mid * self._window)) ** 2 + 1e-12
        side_power = np.abs(np.fft.rfft(side * self._window)) ** 2 + 1e-12
        inside = (self._band_of >= 0) & (self._band_of < self.bands)
        band_db = 10 * np.log10(np.bincount(self._band_of[inside], mid_power[inside], self.bands) + 1e-12)
        shape = (band_db - band_db.mean()) / 10.0
        width_db = 10 * np.log10(
            np.bincount(self._broad_of[inside], side_power[inside], 4)
            / np.bincount(self._broad_of[inside], mid_power[inside], 4))
        correlation = float(np.corrcoef(left, right)[0, 1]) if left.std() > 0 and right.std() > 0 else 1.0
        v = np.concatenate([shape, np.clip(width_db, -40, 10) / 10.0, [correlation]])
        return v / np.linalg.norm(v)


def render_track(seed: int, style: tuple[float, float], seconds: float = 1.0) -> np.ndarray:
    """A stereo "mix" of one song (``seed``) under one style ``(tilt_db_per_octave, width)``.

    The song content (notes, noise) depends on ``seed`` only; the style sets the spectral tilt
    and the stereo width (side gain), the way an EQ and a stereo widener would.

    Shape:
        ``(2, samples)`` at 16 kHz.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    dry = sum(np.sin(2 * np.pi * f * t) * a for f, a in zip(rng.uniform(80, 2000, 5), rng.uniform(0.1, 0.3, 5)))
    centre = dry + 0.3 * rng.standard_normal(n)
    spread = 0.3 * rng.standard_normal(n)
    tilt_db_per_octave, width = style
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = 10 ** (tilt_db_per_octave * np.log2(np.maximum(freqs, 50) / 1000) / 20)
    centre = np.fft.irfft(np.fft.rfft(centre) * gain, n)
    spread = np.fft.irfft(np.fft.rfft(spread) * gain, n) * width
    audio = np.stack([centre + spread, centre - spread])
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


STYLES = [(-6.0, 0.1), (-3.0, 0.8), (0.0, 0.3), (3.0, 1.0), (6.0, 0.05)]


def make_library(root: Path, tracks: int, seconds: float = 1.0, corrupt: int = 0) -> list[Path]:
    """Write ``tracks`` wav files (song ``i`` in style ``i % 5``) in nested folders, plus
    ``corrupt`` files with an audio extension and garbage bytes. Returns the good files."""
    files = []
    for i in range(tracks):
        path = root / f"album{i % 3}" / f"track{i:04d}.wav"
        write_audio(path, render_track(i, STYLES[i % len(STYLES)], seconds), SAMPLE_RATE)
        files.append(path)
    for i in range(corrupt):
        bad = root / f"broken{i}.wav"
        bad.write_bytes(b"RIFF\x00\x00not a wave file" + os.urandom(64))
    (root / "notes.txt").write_text("not audio, ignored by the walker")
    return files


class FailingEmbedder(BandStereoEmbedder):
    """Raises ``KeyboardInterrupt``-like failure after ``fail_after`` files (a simulated kill)."""

    def __init__(self, fail_after: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_after = fail_after
        self.calls = 0

    def embed_file_clips(self, path):
        self.calls += 1
        if self.calls > self.fail_after:
            raise KeyboardInterrupt(f"simulated kill after {self.fail_after} files")
        return super().embed_file_clips(path)


class RaisingEmbedder(BandStereoEmbedder):
    """Raises ``SeparationError`` on the files named ``bad_name`` (a separator failing on one file)."""

    def __init__(self, bad_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bad_name = bad_name

    def embed_file_clips(self, path):
        from mixrep.errors import SeparationError

        if Path(path).name == self.bad_name:
            raise SeparationError(f"simulated separator failure on {path}")
        return super().embed_file_clips(path)


class CrashingEmbedder(BandStereoEmbedder):
    """Kills its own process (``os._exit``) while embedding the file named ``crash_name``: the first time
    only (a lost worker), or every time (``always``: a file that crashes the separator). ``marker`` is a
    file path that records the first crash across processes."""

    def __init__(self, crash_name: str, marker: str, always: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crash_name, self.marker, self.always = crash_name, Path(marker), always

    def embed_file_clips(self, path):
        if Path(path).name == self.crash_name and (self.always or not self.marker.exists()):
            self.marker.write_text("crashed")
            os._exit(1)
        return super().embed_file_clips(path)


class DriverOnlyEmbedder(BandStereoEmbedder):
    """Can be built only in the process ``driver_pid`` (a checkpoint missing on the worker nodes)."""

    def __init__(self, driver_pid: int, **kwargs) -> None:
        if os.getpid() != driver_pid:
            raise FileNotFoundError("no checkpoint at /shared/model.ckpt on this node")
        super().__init__(**kwargs)
