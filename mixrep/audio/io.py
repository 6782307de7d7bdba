"""Segment-wise audio reading and writing on top of pedalboard's ``AudioFile``.

``AudioFile`` seeks inside compressed files (mp3, flac, ogg) and resamples while it decodes, so
reading 4 s from the middle of a 10 minute track decodes about 4 s, not 10 minutes.

Shape:
    Every array returned here is ``(channels=2, samples)`` float32 at the requested sample rate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from mixrep.constants import CHANNELS, SAMPLE_RATE
from mixrep.errors import AudioReadError
from mixrep.files import atomic_write

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000


def check_sample_rate(sample_rate: float, what: str = "sample_rate") -> int:
    """Validate a sample rate in Hz and return it as an int.

    Raises:
        ValueError: outside ``[8000, 192000]`` Hz or not an integer number of Hz.
    """
    if not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE) or sample_rate != int(sample_rate):
        raise ValueError(
            f"unsupported {what} {sample_rate!r} Hz: use an integer rate between "
            f"{MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz (the model rate is {SAMPLE_RATE})"
        )
    return int(sample_rate)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Return ``(2, samples)``: mono is duplicated, stereo kept, more channels rejected.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"expected (channels, samples) audio, got shape {audio.shape}")
    if audio.shape[0] == 1:
        return np.repeat(audio, CHANNELS, axis=0)
    if audio.shape[0] == CHANNELS:
        return audio
    raise ValueError(f"expected mono or stereo audio, got {audio.shape[0]} channels")


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """Read ``(duration_seconds, sample_rate, channels)`` from the header, without decoding.

    Raises:
        AudioReadError: the file is missing, unsupported or corrupt.
    """
    try:
        with AudioFile(str(path)) as f:
            return f.frames / f.samplerate, int(f.samplerate), int(f.num_channels)
    except Exception as e:  # pedalboard raises RuntimeError/ValueError/OSError by format
        raise AudioReadError(f"cannot open audio file {path}: {e}") from e


def audio_duration(path: str | os.PathLike) -> float:
    """Duration of an audio file in seconds, read from its header (no decoding)."""
    return audio_info(path)[0]


def read_segment(
    path: str | os.PathLike,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Read ``duration_seconds`` of audio from ``start_seconds``, resampled and stereo.

    Only the requested span is decoded. A span that runs past the end of the file is
    zero-padded so the result always has ``round(duration_seconds * sample_rate)`` samples.

    Args:
        path: mp3, flac, wav, ogg or any format pedalboard reads.
        start_seconds: offset of the first sample, in seconds (>= 0).
        duration_seconds: length to read in seconds; ``None`` reads to the end.
        sample_rate: output rate in Hz.

    Returns:
        ``(2, samples)`` float32.

    Raises:
        AudioReadError: the file cannot be opened or decoded.
        ValueError: negative start/duration or unsupported sample rate.
    """
    sample_rate = check_sample_rate(sample_rate)
    if start_seconds < 0 or (duration_seconds is not None and duration_seconds < 0):
        raise ValueError(f"start and duration must be >= 0, got {start_seconds}, {duration_seconds}")
    try:
        with AudioFile(str(path)) as f:
            with f.resampled_to(sample_rate) as r:
                start = int(round(start_seconds * sample_rate))
                total = r.frames
                wanted = total - start if duration_seconds is None else int(round(duration_seconds * sample_rate))
                wanted = max(wanted, 0)
                if start < total:
                    r.seek(start)
                    audio = r.read(min(wanted, total - start))
                else:
                    audio = np.zeros((r.num_channels, 0), dtype=np.float32)
    except Exception as e:
        raise AudioReadError(f"cannot decode {path} at {start_seconds:.2f} s: {e}") from e
    audio = to_stereo(audio)
    if audio.shape[1] < wanted:
        audio = np.pad(audio, ((0, 0), (0, wanted - audio.shape[1])))
    if not np.isfinite(audio).all():
        raise AudioReadError(f"{path} decoded to non-finite samples at {start_seconds:.2f} s")
    return audio


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole file: ``(2, samples)`` float32 at ``sample_rate``."""
    return read_segment(path, 0.0, None, sample_rate)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``(channels, samples)`` audio atomically (:func:`mixrep.files.atomic_write`).

    The format follows the extension (wav, flac, mp3, ogg). A crash mid-write leaves no file
    at ``path``; the file's mode follows the umask.
    """
    path = Path(path)
    audio = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    if audio.ndim == 1:
        audio = audio[None]
    with atomic_write(path) as tmp:
        with AudioFile(str(tmp), "w", samplerate=sample_rate, num_channels=audio.shape[0]) as f:
            f.write(audio)
    return path


def num_samples(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of samples in ``seconds`` at ``sample_rate`` (rounded)."""
    return int(round(seconds * sample_rate))
