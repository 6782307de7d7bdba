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
