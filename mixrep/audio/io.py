"""Segment-wise audio reading and writing on top of pedalboard's ``AudioFile``.

``AudioFile`` seeks inside compressed files (mp3, flac, ogg) and resamples while it decodes, so
reading 4 s from the middle of a 10 minute track decodes about 4 s, not 10 minutes.

Shape:
    Every array returned here is ``(channels=2, samples)`` float32 at the requested sample rate.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from mixrep.constants import CHANNELS, SAMPLE_RATE
from mixrep.errors import AudioReadError
from mixrep.files import atomic_write

log = logging.getLogger(__name__)

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


def channels_remedy(path: str | os.PathLike, channels: int) -> str:
    """The message for a file of more than two channels: which file, and what to do."""
    return (f"{path} has {channels} channels; mixrep reads mono or stereo: downmix it "
            f"(ffmpeg -i IN -ac 2 OUT.wav) or split it into one file per track")


def to_stereo(audio: np.ndarray, what: str | os.PathLike | None = None) -> np.ndarray:
    """Return ``(2, samples)``: mono is duplicated, stereo kept, more channels rejected.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``.
        what: the file the audio came from, named in the error.
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
    if what is not None:
        raise AudioReadError(channels_remedy(what, audio.shape[0]))
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
        AudioReadError: the file cannot be opened or decoded, or has more than two channels.
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
    audio = to_stereo(audio, path)
    if audio.shape[1] < wanted:
        audio = np.pad(audio, ((0, 0), (0, wanted - audio.shape[1])))
    if not np.isfinite(audio).all():
        raise AudioReadError(f"{path} decoded to non-finite samples at {start_seconds:.2f} s")
    return audio


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole file: ``(2, samples)`` float32 at ``sample_rate``."""
    return read_segment(path, 0.0, None, sample_rate)


FLOAT_FORMATS: tuple[str, ...] = (".wav",)
"""Extensions written as 32-bit float: any level survives, nothing clips."""
INTEGER_BIT_DEPTH = 24
"""Bit depth of lossless integer formats (FLAC)."""


WRITABLE_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".mp3")
"""Formats :func:`write_audio` writes (pedalboard's encoders)."""
MAX_SAMPLE_DBFS = 60.0
"""A sample above this (1000 x full scale) is not audio: a corrupt or mis-scaled file. Float WAVs
legitimately hold peaks above 0 dBFS (mixrep writes them), never 60 dB above it."""


def check_sample_range(audio: np.ndarray, what: str | os.PathLike, sample_rate: int) -> None:
    """Refuse audio ``(channels, samples)`` with a sample above :data:`MAX_SAMPLE_DBFS` (e.g. 1e30).

    Raises:
        AudioReadError: naming ``what``, the sample's level and time, and what to do.
    """
    limit = 10.0 ** (MAX_SAMPLE_DBFS / 20.0)
    peak_index = int(np.abs(audio).argmax()) if audio.size else 0
    peak = float(np.abs(audio.reshape(-1)[peak_index])) if audio.size else 0.0
    if peak > limit:
        seconds = (peak_index % audio.shape[-1]) / sample_rate
        raise AudioReadError(
            f"{what} has a sample of {peak:.3g} ({20.0 * math.log10(peak):+.0f} dBFS) at {seconds:.2f} s, more "
            f"than {MAX_SAMPLE_DBFS:.0f} dB above full scale: the file is corrupt or not audio; re-export it "
            f"(or remove the samples) and run again")


def check_audio_extension(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` if :func:`write_audio` can write its format.

    Raises:
        ValueError: another extension (naming the ones it writes).
    """
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_EXTENSIONS:
        raise ValueError(f"{what} {path}: cannot write {path.suffix or 'a file without an extension'}; use one of "
                         f"{', '.join(WRITABLE_EXTENSIONS)} (.wav keeps peaks above 0 dBFS)")
    return path


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``(channels, samples)`` audio atomically (:func:`mixrep.files.atomic_write`).

    One rule for every file mixrep writes: WAV is 32-bit float, so levels above full scale are
    kept exactly; FLAC (24-bit) and lossy formats cannot hold them, so a peak above 0 dBFS is
    clipped there with a warning that reports the peak and the number of clipped samples (write
    WAV to keep them). Non-finite samples are refused. A crash mid-write leaves no file at ``path``; the
    file's mode follows the umask.

    Raises:
        ValueError: NaN or infinite samples (nothing is written).
    """
    path = Path(path)
    audio = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    if audio.ndim == 1:
        audio = audio[None]
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise ValueError(f"refusing to write {path}: {bad} of {audio.size} samples are NaN or infinite")
    suffix = path.suffix.lower()
    options = {}
    if suffix in FLOAT_FORMATS:
        options["bit_depth"] = 32
    else:
        if suffix == ".flac":
            options["bit_depth"] = INTEGER_BIT_DEPTH
        peak = float(np.abs(audio).max(initial=0.0))
        if peak > 1.0:
            clipped = int((np.abs(audio) > 1.0).sum())
            log.warning("%s: peak %.2f dBFS, %d samples above full scale are clipped by the %s "
                        "format; write a .wav (32-bit float) to keep them", path,
                        20.0 * math.log10(peak), clipped, suffix)
    with atomic_write(path) as tmp:
        with AudioFile(str(tmp), "w", samplerate=sample_rate, num_channels=audio.shape[0], **options) as f:
            f.write(audio)
    return path


def num_samples(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of samples in ``seconds`` at ``sample_rate`` (rounded)."""
    return int(round(seconds * sample_rate))
