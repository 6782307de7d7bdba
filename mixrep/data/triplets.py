"""The triplet dataset: anchor / positive / negative as 8-channel log-mels plus mix features.

Sampling is reproducible and independent of worker assignment: item ``key`` draws everything
(clip offsets, chains, partner songs) from ``np.random.default_rng([seed, key])``, and the track is
``key % num_tracks``. :class:`EpochSampler` yields ``epoch * num_tracks + permutation`` so each
epoch sees fresh crops and chains while any run with the same seed sees the same ones. One
exception: a track found unreadable is remembered per process (DataLoader worker), so once a
dataset has bad tracks, which replacement an item gets can depend on the worker layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mixrep.audio.features import mix_features
from mixrep.audio.mel import StemMelSpectrogram
from mixrep.data.strategies import PairStrategy, TripletStems, non_overlapping_starts
from mixrep.data.tracks import Source, Track
from mixrep.errors import DatasetError, MixrepError

log = logging.getLogger(__name__)

SIDES = ("anchor", "positive", "negative")
SILENCE_RMS_DB = -70.0


@dataclass(frozen=True)
class MelConfig:
    """Log-mel front end settings (see :class:`~mixrep.audio.mel.StemMelSpectrogram`)."""

    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512


class SilentClipError(MixrepError):
    """No non-silent clip could be found in a track."""


class TrackFailed(MixrepError):
    """Reading one track failed; ``track_id`` names it (it may be a partner, not the anchor)."""

    def __init__(self, track_id: str, cause: Exception) -> None:
        super().__init__(f"track {track_id}: {cause}")
        self.track_id = track_id


def rms_db(audio: np.ndarray) -> float:
    """RMS level of any array in dBFS (floor -200 dB)."""
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


class TripletDataset(Dataset):
    """Triplets of 8-channel log-mel spectrograms and mix-feature vectors.

    Each item is a dict with, for ``side`` in anchor/positive/negative:

    - ``{side}_mel``: ``(channels=8, n_mels, frames)`` float32 log-mel (4 stems x stereo);
    - ``{side}_features``: ``(num_features,)`` float32 mix features;

    plus ``track_index`` (int). Unreadable or silent tracks are skipped (logged once, counted in
    :attr:`skipped_tracks`) and another track is drawn in their place.

    Args:
        source: where stems come from.
        tracks: the tracks of this split (``source.tracks(split)``).
        strategy: how positives and negatives are drawn.
        clip_seconds: length of every clip in seconds.
        mel: log-mel settings.
        seed: base seed of all random draws.
        max_retries: tracks tried for one item before giving up with a DatasetError.
    """

    def __init__(self, source: Source, tracks: list[Track], strategy: PairStrategy, clip_seconds: float = 4.0,
                 mel: MelConfig = MelConfig(), seed: int = 0, max_retries: int = 20) -> None:
        if not tracks:
            raise DatasetError(f"source {source.name!r} has no usable tracks for this split "
                               f"({source.skipped.summary()}); add tracks or lower the clip length")
        too_short = [t.track_id for t in tracks if t.duration_seconds < 2 * clip_seconds]
        if too_short:
            raise DatasetError(f"{len(too_short)} tracks of {source.name!r} are shorter than two "
                               f"{clip_seconds} s clips (e.g. {too_short[0]}); lower clip_seconds")
        self.source = source
        self.tracks = tracks
        self.strategy = strategy
        self.clip_seconds = clip_seconds
        self.sample_rate = source.sample_rate
        self.seed = seed
        self.max_retries = max_retries
        self.mel = StemMelSpectrogram(self.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length,
                                      n_mels=mel.n_mels)
        self.skipped_tracks: set[str] = set()

    def __len__(self) -> int:
        return len(self.tracks)

    def read_clips(self, track: Track, rng: np.random.Generator, count: int = 1) -> list[np.ndarray]:
        """``count`` non-overlapping, non-silent clips of ``track`` (see :class:`ClipReader`).

        Raises:
            TrackFailed: the track is unreadable, always silent, or was skipped before.
        """
        if track.track_id in self.skipped_tracks:
            raise TrackFailed(track.track_id, MixrepError("skipped earlier in this process"))
        try:
            for _ in range(8):
                if count == 1:
                    starts = (float(rng.uniform(0.0, track.duration_seconds - self.clip_seconds)),)
                else:
                    starts = non_overlapping_starts(track.duration_seconds, self.clip_seconds, rng)
                clips = [self.source.read_stems(track, start, self.clip_seconds) for start in starts]
                if all(rms_db(clip.sum(axis=0)) > SILENCE_RMS_DB for clip in clips):
                    return clips
            raise SilentClipError(f"8 random clips were silent (below {SILENCE_RMS_DB} dBFS)")
        except MixrepError as e:
            raise TrackFailed(track.track_id, e) from e

    def draw(self, key: int) -> TripletStems:
        """Raw stems of item ``key``, skipping unreadable or silent tracks."""
        rng = np.random.default_rng([self.seed, key])
        index = key % len(self.tracks)
        for _ in range(self.max_retries):
            try:
                triplet = self.strategy.draw(self.tracks, index, self.read_clips, rng, self.sample_rate)
                triplet.info["track_index"] = index
                return triplet
            except TrackFailed as e:
                # The failing track may be the anchor or a partner song: skip that one.
                if e.track_id not in self.skipped_tracks:
                    self.skipped_tracks.add(e.track_id)
                    log.warning("skipping %s", e)
            index = int(rng.integers(len(self.tracks)))
        raise DatasetError(f"{self.max_retries} tracks in a row were unreadable or silent "
                           f"(last: {self.tracks[index].track_id}); check the dataset and the logs")

    @torch.no_grad()
    def encode(self, stems: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stems, channels, samples)`` -> ``(mel (8, n_mels, frames), features (num_features,))``."""
        mel = self.mel(torch.from_numpy(np.ascontiguousarray(stems)))
        features = torch.from_numpy(mix_features(stems, self.sample_rate))
        return mel, features

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        triplet = self.draw(int(key))
        item: dict[str, torch.Tensor] = {"track_index": torch.tensor(triplet.info["track_index"])}
        for side in SIDES:
            item[f"{side}_mel"], item[f"{side}_features"] = self.encode(getattr(triplet, side))
        return item


class EpochSampler(Sampler[int]):
    """Yields ``epoch * size + i`` over a seeded permutation of ``range(size)``.

    ``size`` is the number of items per epoch (a multiple of the track count visits each track
    several times with different crops). Lightning calls :meth:`set_epoch` at the start of every
    epoch (also through its distributed wrapper), so epochs differ but are reproducible.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
                 if self.shuffle else np.arange(self.size))
        offset = self.epoch * self.size
        return iter(int(offset + i) for i in order)
