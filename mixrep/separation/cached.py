"""Stems of mixture tracks through a separator: cached on disk (:class:`CachedSeparation`) or not
(:class:`OnTheFlySeparation`).

Each track is decoded and separated once, whole, the first time any span of it is asked for (or
ahead of time with ``mixrep separate``); every crop after that is a slice of the cached memory map.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from mixrep.audio.io import check_sample_rate, num_samples, read_audio, read_segment
from mixrep.constants import CHANNELS, SAMPLE_RATE, STEMS
from mixrep.tracks import Track
from mixrep.errors import DatasetError
from mixrep.separation.base import Separator
from mixrep.separation.cache import StemCache


def separate_array(separator: Separator, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """Separate one mixture given at ``sample_rate``, resampling to and from the separator's rate.

    Shape:
        mix: ``(channels=2, samples)`` -> ``(stems=4, channels=2, samples)`` float32, same length.
    """
    length = mix.shape[-1]
    separator_rate = separator.sample_rate
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(mix))[None]
        if separator_rate != sample_rate:  # torchaudio both ways, so the length is exact
            x = AF.resample(x, sample_rate, separator_rate)
        stems = separator.separate(x)[0]
        if separator_rate != sample_rate:
            stems = AF.resample(stems, separator_rate, sample_rate)
        stems = torch.nn.functional.pad(stems, (0, max(0, length - stems.shape[-1])))[..., :length]
    stems = stems.float().cpu().numpy()
    assert stems.shape[:2] == (len(STEMS), CHANNELS), (stems.shape, "(4, 2, samples)")
    return stems


class OnTheFlySeparation:
    """A :class:`~mixrep.separation.base.TrackStems` that separates every requested span anew.

    No disk is used: each crop decodes only its span of the mixture and runs the separator on
    it (as the prototype did). Orders of magnitude slower than :class:`CachedSeparation` on a
    CPU; useful on a GPU for a dataset read once, or when the disk for a cache is missing.
    """

    def __init__(self, separator: Separator, sample_rate: int = SAMPLE_RATE) -> None:
        self.separator = separator
        self.sample_rate = check_sample_rate(sample_rate)
        self.name = separator.name

    def read(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        if track.audio_path is None:
            raise DatasetError(f"track {track.track_id} has no audio_path: OnTheFlySeparation separates mixture "
                               f"files; read tracks with stem files through OracleStems")
        mix = read_segment(track.audio_path, start_seconds, duration_seconds, self.sample_rate)
        return separate_array(self.separator, mix, self.sample_rate)


class CachedSeparation:
    """A :class:`~mixrep.separation.base.TrackStems` that separates each track once and caches it.

    Args:
        separator: any :class:`~mixrep.separation.base.Separator` (e.g. ``DemucsSeparator``).
        cache: where the full-length stems are stored.
        sample_rate: rate in Hz of the stems returned and cached.
        max_separate_seconds: separate only the first this-many seconds of longer tracks (bounds
            the time and memory a 20-minute track costs); crops must then stay inside that span.

    Attributes:
        name: the cache's separator key: the separator's name plus the separation limit.
    """

    def __init__(self, separator: Separator, cache: StemCache, sample_rate: int = SAMPLE_RATE,
                 max_separate_seconds: float | None = None) -> None:
        if max_separate_seconds is not None and max_separate_seconds <= 0:
            raise ValueError(f"max_separate_seconds must be > 0, got {max_separate_seconds}")
        self.separator = separator
        self.cache = cache
        self.sample_rate = check_sample_rate(sample_rate)
        self.max_separate_seconds = max_separate_seconds
        self.name = separator.name + (f"-first{max_separate_seconds:g}s" if max_separate_seconds else "")

    def _path(self, track: Track):
        if track.audio_path is None:
            raise DatasetError(f"track {track.track_id} has no audio_path: CachedSeparation separates mixture "
                               f"files; read tracks with stem files through OracleStems")
        return track.audio_path

    def __contains__(self, track: Track) -> bool:
        return (self._path(track), self.name, self.sample_rate) in self.cache

    def separate_track(self, track: Track) -> np.ndarray:
        """Decode and separate a whole track (up to ``max_separate_seconds``), bypassing the cache.

        Shape:
            returns: ``(stems=4, channels=2, samples)`` float32 at :attr:`sample_rate`.

        Raises:
            AudioReadError: the track cannot be decoded.
        """
        mix = read_audio(self._path(track), self.sample_rate)
        if self.max_separate_seconds is not None:
            mix = mix[:, :num_samples(self.max_separate_seconds, self.sample_rate)]
        return separate_array(self.separator, mix, self.sample_rate)

    def ensure(self, track: Track) -> bool:
        """Separate and cache ``track`` unless it is cached; returns whether it separated."""
        if track in self:
            return False
        self.cache.put(self._path(track), self.name, self.sample_rate, self.separate_track(track))
        return True

    def read(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Stems of a span, from the cache (separating the whole track first on a miss).

        Spans past the end of the track are zero-padded.

        Shape:
            returns: ``(stems=4, channels=2, round(duration_seconds * sample_rate))`` float32.

        Raises:
            DatasetError: the span ends past ``max_separate_seconds`` of a track longer than that.
            AudioReadError: the track cannot be decoded (on a miss).
        """
        if start_seconds < 0 or duration_seconds < 0:
            raise ValueError(f"start and duration must be >= 0, got {start_seconds}, {duration_seconds}")
        path = self._path(track)
        stems = self.cache.get(path, self.name, self.sample_rate)
        if stems is None:
            self.ensure(track)
            stems = self.cache.get(path, self.name, self.sample_rate)
            if stems is None:  # only if the file changed while it was being separated
                raise DatasetError(f"{path} changed while it was being separated; read it again")
        limit = self.max_separate_seconds
        end_seconds = start_seconds + duration_seconds
        if limit is not None and end_seconds > limit + 1e-6 and track.duration_seconds > limit:
            raise DatasetError(
                f"span {start_seconds:.2f}-{end_seconds:.2f} s of {track.track_id} lies past the first "
                f"{limit:g} s that were separated (max_separate_seconds); sample crops inside that span"
            )
        start = num_samples(start_seconds, self.sample_rate)
        length = num_samples(duration_seconds, self.sample_rate)
        out = np.zeros((len(STEMS), CHANNELS, length), dtype=np.float32)
        available = stems[:, :, start:start + length]
        out[:, :, :available.shape[-1]] = available
        return out

    def __repr__(self) -> str:
        return f"CachedSeparation({self.name!r}, {self.cache!r}, sample_rate={self.sample_rate})"
