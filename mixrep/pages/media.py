"""What a listening page embeds: audio excerpts and figures as ``data:`` URIs.

A page is one self-contained HTML file, so every player's audio is inside it: the first
``seconds`` of a file (or of several files summed: a song's dry tracks, a folder of stems),
encoded by pedalboard's ``AudioFile`` as Ogg Vorbis at 128 kbps (about 1 MB per minute of stereo,
whatever the source's rate) or as 16-bit FLAC (lossless, several times larger), both of which
Chromium and Firefox play. Figures are embedded as they were written (PNG, SVG or JPEG).

Shape:
    :attr:`Clip.audio` is ``(channels=2, samples)`` float32 at :attr:`Clip.sample_rate`.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from mixrep.audio.io import audio_info, read_segment
from mixrep.errors import AudioReadError, OutputError
from mixrep.files import find_stem_files

DEFAULT_EXCERPT_SECONDS = 30.0
"""Length of every player's excerpt (the start of each file) unless a page asks for another."""


@dataclass(frozen=True)
class AudioFormat:
    """How a player's audio is encoded: pedalboard's ``format`` and options, the MIME type, a label."""

    extension: str
    mime: str
    options: tuple[tuple[str, object], ...]
    label: str


AUDIO_FORMATS: dict[str, AudioFormat] = {
    "ogg": AudioFormat("ogg", "audio/ogg", (("quality", "128 kbps"),), "Ogg Vorbis 128 kbps"),
    "flac": AudioFormat("flac", "audio/flac", (("bit_depth", 16),), "FLAC 16-bit"),
}
"""The formats a page embeds its audio in (``--audio-format``)."""

IMAGE_TYPES: dict[str, str] = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
                               ".jpeg": "image/jpeg"}
"""Figure files a page embeds, by extension (a PDF figure cannot be shown inline)."""


@dataclass(frozen=True)
class Clip:
    """The audio of one player, decoded.

    Attributes:
        label: what the player is (``reference``, ``raw sum``...); source: the file(s) it came from,
            as shown on the page; audio: ``(2, samples)`` float32 at ``sample_rate`` Hz;
        gain_db: the gain applied so that the encoded audio does not clip (0, or negative).
    """

    label: str
    source: str
    audio: np.ndarray
    sample_rate: int
    gain_db: float = 0.0

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class EncodedClip:
    """A clip ready for the page: its ``data:`` URI and the size of the encoded audio in bytes."""

    clip: Clip
    data_uri: str
    size_bytes: int
    format: AudioFormat


def audio_sources(path: Path, what: str) -> tuple[Path, ...]:
    """The audio files one player sums: ``path`` itself when it is a file, else the stems in the
    folder ``path`` (drums, bass, other, vocals; any of them present).

    Raises:
        AudioReadError: ``path`` is missing, a folder without stems, or a file pedalboard cannot open
            (checked on the headers, nothing is decoded).
    """
    if not path.exists():
        raise AudioReadError(f"{what} {path} does not exist; check the path")
    files = tuple(find_stem_files(path).values()) if path.is_dir() else (path,)
    if not files:
        raise AudioReadError(f"{what} {path} is a folder without stems (drums, bass, other, vocals audio files); "
                             f"pass an audio file or a stems folder")
    for file in files:
        audio_info(file)
    return files


def read_clip(label: str, files: Sequence[Path], seconds: float, source: str | None = None) -> Clip:
    """The first ``seconds`` of ``files`` summed (one file, a song's tracks, a folder's stems), at
    the first file's sample rate, lowered by a plain gain when the sum would clip (peak above 1).

    Raises:
        AudioReadError: a file cannot be decoded (named).
        ValueError: no files or ``seconds`` not positive.
    """
    if not files:
        raise ValueError(f"the {label} player has no audio files")
    if not seconds > 0:
        raise ValueError(f"the excerpt length must be positive, got {seconds} s")
    infos = [audio_info(f) for f in files]
    sample_rate = infos[0][1]
    excerpt_seconds = min(seconds, max(duration for duration, _, _ in infos))
    audio = np.zeros((2, round(excerpt_seconds * sample_rate)), dtype=np.float32)
    for file in files:
        audio += read_segment(file, 0.0, excerpt_seconds, sample_rate)[:, : audio.shape[-1]]
    peak = float(np.abs(audio).max(initial=0.0))
    gain_db = 0.0
    if peak > 1.0:
        gain_db = -20.0 * math.log10(peak)
        audio /= peak
    return Clip(label, source if source is not None else ", ".join(map(str, files)), audio, sample_rate, gain_db)


def encode_clip(clip: Clip, audio_format: str = "ogg") -> EncodedClip:
    """Encode ``clip`` in one of :data:`AUDIO_FORMATS` as a ``data:`` URI (base64)."""
    spec = AUDIO_FORMATS[audio_format]
    buffer = io.BytesIO()
    with AudioFile(buffer, "w", samplerate=clip.sample_rate, num_channels=clip.audio.shape[0],
                   format=spec.extension, **dict(spec.options)) as f:
        f.write(np.ascontiguousarray(clip.audio))
    data = buffer.getvalue()
    return EncodedClip(clip, f"data:{spec.mime};base64,{base64.b64encode(data).decode('ascii')}", len(data), spec)


def check_image(path: Path, what: str = "figure") -> Path:
    """``path`` if a page can embed it: an existing PNG, SVG or JPEG file.

    Raises:
        OutputError: missing, or another format (naming the ones a page shows).
    """
    if path.suffix.lower() not in IMAGE_TYPES:
        raise OutputError(f"{what} {path}: a page shows {', '.join(IMAGE_TYPES)} figures, not "
                          f"{path.suffix or 'a file without an extension'}; write the figure as .png (--figure)")
    if not path.is_file():
        raise OutputError(f"{what} {path} does not exist; pass the figure `mixrep mix` wrote (--figure), or leave it "
                          f"out (--no-figure)")
    return path


def image_data_uri(path: str | os.PathLike) -> str:
    """A PNG, SVG or JPEG file as a ``data:`` URI (base64)."""
    path = Path(path)
    return f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
