"""The triplet dataset: raw stems of anchor / positive / negative, cropped and restyled on the CPU.

Items carry stems only; the front end (log-mel + mix features, :class:`mixrep.frontend.FrontEnd`)
runs batched on the training device inside the LightningModule. DataLoader workers therefore do
what only a CPU can: decode or slice the crops and mix them in their styles (pedalboard).

Sampling is reproducible and independent of worker assignment: item ``key`` draws everything
(clip offsets, styles, partner songs) from ``np.random.default_rng([seed, key])``, and the track is
``key % num_tracks``. :class:`EpochSampler` yields ``epoch * num_tracks + permutation`` so each
epoch sees fresh crops and styles while any run with the same seed sees the same ones. One
exception: a track found unreadable is remembered per process (DataLoader worker), so once a
dataset has bad tracks, which replacement an item gets can depend on the worker layout.

Groups. A strategy that draws ``g = strategy.group_size`` triplets at once (``crossed``: 2) makes
items ``g * j ... g * j + g - 1`` the triplets of group ``j``, drawn from ``default_rng([seed, j])``
with the anchor track ``j % num_tracks``. The dataset keeps the last group it drew, and
:class:`EpochSampler` (given the group size) yields a group's items next to each other, so the
worker that loads a batch draws each group once; which items exist never depends on that cache.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mixrep.audio.primitives import rms_db
from mixrep.constants import SILENCE_RMS_DB
from mixrep.corpora.timbre import jitter_timbre
from mixrep.errors import DatasetError, MixrepError
from mixrep.frontend import FrontEnd
from mixrep.styles.mix_style import EqRanges
from mixrep.styles.spaces import Clip, read_clip
from mixrep.tracks import Source, Track
from mixrep.training.strategies import PairStrategy, TripletStems, non_overlapping_starts

log = logging.getLogger(__name__)

SIDES = ("anchor", "positive", "negative")
TRANSPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""dtypes items may carry stems in: float16 halves what workers copy and the host sends to the GPU."""


def stems_key(side: str) -> str:
    """Batch key of one side's stems: ``anchor_stems``, ``positive_stems``, ``negative_stems``."""
    return f"{side}_stems"


@torch.no_grad()
def encode_triplets(batch: dict[str, torch.Tensor], frontend: FrontEnd) -> dict[str, torch.Tensor]:
    """A batch of stems -> the model's inputs, all three sides in one front-end pass.

    Returns a new dict where ``{side}_stems`` are replaced by ``{side}_mel``
    ``(batch, 8, n_mels, frames)`` and ``{side}_features`` ``(batch, num_features)``, computed
    on the stems' device; other keys (``track_index``) are kept. A batch without stems is returned
    as it is.
    """
    if stems_key(SIDES[0]) not in batch:
        return batch
    batch = dict(batch)
    mel, features = frontend(torch.cat([batch.pop(stems_key(side)) for side in SIDES]))
    for side, side_mel, side_features in zip(SIDES, mel.chunk(len(SIDES)), features.chunk(len(SIDES))):
        batch[f"{side}_mel"], batch[f"{side}_features"] = side_mel, side_features
    return batch


class SilentClipError(MixrepError):
    """No non-silent clip could be found in a track."""


class TrackFailed(MixrepError):
    """Reading one track failed; ``track_id`` names it (it may be a partner, not the anchor)."""

    def __init__(self, track_id: str, cause: Exception) -> None:
        super().__init__(f"track {track_id}: {cause}")
        self.track_id = track_id


class TripletDataset(Dataset):
    """Triplets of raw stems: anchor, positive and negative crops, restyled by the strategy.

    Each item is a dict with

    - ``anchor_stems``, ``positive_stems``, ``negative_stems`` (:func:`stems_key`):
      ``(stems=4, channels=2, samples)`` in ``transport_dtype``, ``samples = round(clip_seconds * rate)``;
    - ``track_index``: int64 scalar, the anchor's index in ``tracks``;
    - where the style space has settings vectors (``mix_style``): ``{side}_settings`` and
      ``{side}_settings_mask``, ``(NUM_SETTINGS,)`` float32 each
      (:mod:`mixrep.styles.settings_vector`), what the settings decoder learns.

    Unreadable or silent tracks are skipped (logged once, counted in :attr:`skipped_tracks`) and
    another track is drawn in their place.

    Args:
        source: where stems come from.
        tracks: the tracks of this split (``source.tracks(split)``).
        strategy: how positives and negatives are drawn.
        clip_seconds: length of every clip in seconds.
        seed: base seed of all random draws.
        max_retries: tracks tried for one item before giving up with a DatasetError.
        transport_dtype: ``"float32"`` or ``"float16"`` (see :data:`TRANSPORT_DTYPES`).
        timbre: EQ ranges of the timbre jitter of every clip read (:mod:`mixrep.corpora.timbre`);
            ``None``: clips as the source gives them.
    """

    def __init__(self, source: Source, tracks: list[Track], strategy: PairStrategy, clip_seconds: float = 4.0,
                 seed: int = 0, max_retries: int = 20, transport_dtype: str = "float32",
                 timbre: EqRanges | None = None) -> None:
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
        self.timbre = timbre
        if transport_dtype not in TRANSPORT_DTYPES:
            raise ValueError(f"transport_dtype={transport_dtype!r}: use one of {', '.join(TRANSPORT_DTYPES)}")
        self.transport_dtype = TRANSPORT_DTYPES[transport_dtype]
        self.skipped_tracks: set[str] = set()
        self._track_index = {t.track_id: i for i, t in enumerate(tracks)}
        self._last_group: tuple[int, list[TripletStems]] | None = None

    @property
    def group_size(self) -> int:
        """Triplets the strategy draws at once (consecutive items of one group)."""
        return self.strategy.group_size

    def __len__(self) -> int:
        return len(self.tracks)

    def read_clips(self, track: Track, rng: np.random.Generator, count: int = 1) -> list[Clip]:
        """``count`` non-overlapping, non-silent clips of ``track`` (see :class:`ClipReader`), read
        track by track when the strategy's style space mixes tracks and the source has them.

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
                clips = [read_clip(self.source, track, start, self.clip_seconds, self.strategy.styles.reads_tracks)
                         for start in starts]
                if all(rms_db(clip.audio.sum(axis=0)) > SILENCE_RMS_DB for clip in clips):
                    return clips if self.timbre is None else jitter_timbre(clips, self.timbre, rng, self.sample_rate)
            raise SilentClipError(f"8 random clips were silent (below {SILENCE_RMS_DB} dBFS)")
        except MixrepError as e:
            raise TrackFailed(track.track_id, e) from e

    def draw(self, key: int) -> TripletStems:
        """Raw stems of item ``key`` (a member of group ``key // group_size``)."""
        group, member = divmod(key, self.group_size)
        if self._last_group is None or self._last_group[0] != group:
            self._last_group = (group, self.draw_group(group))
        return self._last_group[1][member]

    def draw_group(self, group: int) -> list[TripletStems]:
        """The ``group_size`` triplets of group ``group``, skipping unreadable or silent tracks."""
        rng = np.random.default_rng([self.seed, group])
        index = group % len(self.tracks)
        for _ in range(self.max_retries):
            try:
                triplets = self.strategy.draw(self.tracks, index, self.read_clips, rng, self.sample_rate)
                for triplet in triplets:
                    triplet.info["track_index"] = self._track_index[triplet.info["track"]]
                return triplets
            except TrackFailed as e:
                # The failing track may be the anchor or a partner song: skip that one.
                if e.track_id not in self.skipped_tracks:
                    self.skipped_tracks.add(e.track_id)
                    log.warning("skipping %s", e)
            index = int(rng.integers(len(self.tracks)))
        raise DatasetError(f"{self.max_retries} tracks in a row were unreadable or silent "
                           f"(last: {self.tracks[index].track_id}); check the dataset and the logs")

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        triplet = self.draw(int(key))
        item: dict[str, torch.Tensor] = {"track_index": torch.tensor(triplet.info["track_index"])}
        for side in SIDES:
            stems = torch.from_numpy(np.ascontiguousarray(getattr(triplet, side)))
            item[stems_key(side)] = stems.to(self.transport_dtype)
        if triplet.settings is not None:
            for side, (values, mask) in zip(SIDES, triplet.settings):
                item[f"{side}_settings"] = torch.from_numpy(values)
                item[f"{side}_settings_mask"] = torch.from_numpy(mask)
        return item


class EpochSampler(Sampler[int]):
    """Yields ``epoch * size + i`` over a seeded permutation of ``range(size)``.

    With ``group_size`` g > 1 the permutation is of the groups ``range(size // g)`` and each group
    ``j`` yields its items ``g * j ... g * j + g - 1`` in a row (``size`` must be a multiple of g).

    ``size`` is the number of items per epoch (a multiple of the track count visits each track
    several times with different crops). Lightning calls :meth:`set_epoch` at the start of every
    epoch (also through its distributed wrapper), so epochs differ but are reproducible. ``epoch``
    is the epoch a new sampler starts at: a resumed run must create its sampler at the restored
    epoch, because DataLoader workers start drawing indices before Lightning calls
    :meth:`set_epoch` (see :meth:`mixrep.training.datamodule.TripletDataModule.train_dataloader`).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, epoch: int = 0, group_size: int = 1) -> None:
        if group_size < 1 or size % group_size:
            raise ValueError(f"an epoch of {size} items cannot be cut into groups of {group_size}; "
                             f"make items_per_epoch a multiple of {group_size}")
        self.size, self.seed, self.shuffle, self.epoch, self.group_size = size, seed, shuffle, epoch, group_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        groups = self.size // self.group_size
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(groups)
                 if self.shuffle else np.arange(groups))
        offset = self.epoch * self.size
        return iter(int(offset + self.group_size * j + m) for j in order for m in range(self.group_size))
