"""Constants shared by every part of mixrep."""

from __future__ import annotations

STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
"""Stem order used everywhere: arrays of shape ``(stems, channels, samples)`` follow it."""

SAMPLE_RATE: int = 44_100
"""Model sample rate in Hz; every reader resamples to it unless told otherwise."""

CHANNELS: int = 2
"""Everything is stereo; mono input is duplicated to both channels."""

AUDIO_EXTENSIONS: tuple[str, ...] = (".mp3", ".flac", ".wav", ".ogg", ".aiff", ".aif", ".m4a")
"""File extensions the audio readers accept (matched case-insensitively)."""

SILENCE_RMS_DB: float = -70.0
"""Silence threshold: audio whose RMS level (dBFS, over both channels of the mix, i.e. the sum of
the stems) is at or below this is silent. The triplet dataset rejects such clips; index builds
leave such tracks out and queries at this level are warned about."""

MIN_EMBED_SECONDS: float = 1.0
"""Shortest audio an encoder embeds, in seconds: shorter files are skipped by index builds and
refused as queries (training needs longer tracks: two clips of ``clip_seconds``)."""
