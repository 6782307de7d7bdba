"""LightningDataModule serving triplets from any source (synthetic corpus, FMA, folders)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from mixrep.audio.augment import AugmentConfig
from mixrep.constants import SAMPLE_RATE
from mixrep.data.strategies import make_strategy
from mixrep.tracks import Source
from mixrep.data.triplets import TRANSPORT_DTYPES, EpochSampler, TripletDataset


def _worker_init(_: int) -> None:
    # Each worker crops and restyles whole items; intra-op threads only contend.
    torch.set_num_threads(1)
    if torch.cuda.is_available():
        # Spawned workers start on cuda:0; under DDP, separate on this process's own GPU.
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def build_source(source: str, root: str | Path | None = None, *, sample_rate: int = SAMPLE_RATE,
                 synth_songs: int = 64, synth_song_seconds: float = 16.0, synth_seed: int = 0,
                 synth_cache_songs: int = 16,
                 fma_subset: str = "small", separator: str = "htdemucs", weights_path: str | None = None,
                 cache_dir: str | Path | None = None, device: str | None = None,
                 min_seconds: float | None = None, stem_cache: bool = True) -> Source:
    """Open a source by kind, wiring Demucs and the stem cache for sources of mixtures.

    Args:
        source: ``synth`` (built-in corpus, no files), ``stems`` (``<song>/<stem>.wav`` folders),
            ``fma`` (FMA root with ``fma_metadata/`` and ``fma_<size>/``) or ``folder`` (any audio).
        root: dataset root; unused for ``synth``.
        synth_cache_songs: synthetic songs each process keeps in memory (LRU); songs outside it
            are re-synthesised on access (~0.1 s each at 22.05 kHz).
        cache_dir: where separated stems are stored (default ``<root>/.mixrep_stems``).
        stem_cache: ``False`` separates every crop on the fly instead (no disk, much slower).
        min_seconds: shorter tracks of file sources are skipped (the triplet data module passes
            two clip lengths).
    """
    from mixrep.data.sources import open_source

    if source == "synth":
        return open_source("synth", sample_rate=sample_rate, num_songs=synth_songs, song_seconds=synth_song_seconds,
                           seed=synth_seed, cache_songs=synth_cache_songs)
    stems = None
    if source in ("fma", "folder"):
        from mixrep.separation.cache import StemCache
        from mixrep.separation.cached import CachedSeparation, OnTheFlySeparation
        from mixrep.separation.demucs import DemucsSeparator

        if root is None:
            raise ValueError(f"source {source!r} needs a root folder (--data.root)")
        demucs = DemucsSeparator(separator, weights_path=weights_path, device=device)
        if stem_cache:
            cache = StemCache(Path(cache_dir) if cache_dir else Path(root) / ".mixrep_stems")
            stems = CachedSeparation(demucs, cache, sample_rate=sample_rate)
        else:
            stems = OnTheFlySeparation(demucs, sample_rate=sample_rate)
    options = {"subset": fma_subset} if source == "fma" else {}
    if min_seconds is not None:
        options["min_seconds"] = min_seconds
    return open_source(source, root, sample_rate=sample_rate, stems=stems, **options)


class TripletDataModule(L.LightningDataModule):
    """Train/val triplet loaders with seeded, reproducible sampling.

    Args:
        source: ``synth``, ``stems``, ``fma`` or ``folder`` (see :func:`build_source`).
        root: dataset root for file sources.
        strategy: ``same_song``, ``same_chain`` or ``mixed`` (see :mod:`mixrep.data.strategies`).
        same_chain_weight: share of ``same_chain`` items when ``strategy="mixed"``.
        clip_seconds: clip length in seconds.
        sample_rate: model sample rate in Hz (the stems' rate; the front end runs in the model).
        augment: style chains for negatives (and for ``same_chain`` pairs).
        batch_size: triplets per batch.
        num_workers: DataLoader worker processes.
        items_per_epoch: training items per epoch (default: one per training track).
        synth_songs, synth_song_seconds, synth_cache_songs: size of the built-in corpus and how
            many of its songs each process keeps in memory.
        seed: seed of every random draw.
        transport_dtype: dtype of the stems in a batch, ``float32`` or ``float16`` (half the
            bytes workers copy and the host sends to the GPU; 11-bit mantissa, about -66 dB of
            relative rounding error, as the stem cache already stores).
        fma_subset, separator, weights_path, cache_dir, stem_cache: file sources only: FMA size
            subset, Demucs model name, local weights, stem-cache folder, cache on/off.
    """

    def __init__(self, source: str = "synth", root: str | None = None, strategy: str = "same_song",
                 same_chain_weight: float = 0.5, clip_seconds: float = 4.0, sample_rate: int = SAMPLE_RATE,
                 augment: AugmentConfig | None = None, batch_size: int = 24, num_workers: int = 2,
                 items_per_epoch: int | None = None, seed: int = 0, transport_dtype: str = "float32",
                 synth_songs: int = 64,
                 synth_song_seconds: float = 16.0, synth_cache_songs: int = 16, fma_subset: str = "small",
                 separator: str = "htdemucs",
                 weights_path: str | None = None, cache_dir: str | None = None, stem_cache: bool = True) -> None:
        super().__init__()
        if transport_dtype not in TRANSPORT_DTYPES:
            raise ValueError(f"transport_dtype={transport_dtype!r}: use one of {', '.join(TRANSPORT_DTYPES)}")
        self.augment = augment or AugmentConfig()
        # Checkpoints hold plain builtins only (they load with torch.load(weights_only=True)).
        self.save_hyperparameters(ignore=["augment"])
        self.hparams["augment"] = self.augment.to_dict()
        self._source: Source | None = None
        self._resumed_epoch = 0
        self.train_set: TripletDataset | None = None
        self.val_set: TripletDataset | None = None

    @property
    def source(self) -> Source:
        if self._source is None:
            h = self.hparams
            self._source = build_source(
                h.source, h.root, sample_rate=h.sample_rate, synth_songs=h.synth_songs,
                synth_song_seconds=h.synth_song_seconds, synth_seed=h.seed, synth_cache_songs=h.synth_cache_songs,
                fma_subset=h.fma_subset,
                separator=h.separator, weights_path=h.weights_path, cache_dir=h.cache_dir,
                stem_cache=h.stem_cache, min_seconds=None if h.source == "synth" else 2 * h.clip_seconds)
        return self._source

    def make_dataset(self, split: str, seed_offset: int = 0) -> TripletDataset:
        h = self.hparams
        strategy = make_strategy(h.strategy, self.augment, h.same_chain_weight)
        return TripletDataset(self.source, self.source.tracks(split), strategy, h.clip_seconds,
                              seed=h.seed + seed_offset, transport_dtype=h.transport_dtype)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self.make_dataset("train")
        if self.val_set is None and stage in (None, "fit", "validate"):
            self.val_set = self.make_dataset("val", seed_offset=1_000_003)

    def _loader(self, dataset: TripletDataset, sampler) -> DataLoader:
        workers = self.hparams.num_workers
        # A cache miss separates inside the worker; CUDA cannot be used in a forked process, so
        # workers that may run Demucs on the GPU are spawned instead.
        separates_on_gpu = self.hparams.source in ("fma", "folder") and torch.cuda.is_available()
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=sampler, num_workers=workers,
                          worker_init_fn=_worker_init, persistent_workers=workers > 0,
                          multiprocessing_context="spawn" if workers > 0 and separates_on_gpu else None,
                          pin_memory=torch.cuda.is_available(), drop_last=False)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        size = self.hparams.items_per_epoch or len(self.train_set)
        return self._loader(self.train_set, EpochSampler(size, seed=self.hparams.seed, epoch=self._starting_epoch()))

    def _trainer_epoch(self) -> int:
        """The epoch Lightning's fit loop is at (the one its next training pass runs)."""
        return 0 if self.trainer is None else int(self.trainer.fit_loop.epoch_progress.current.processed)

    def _starting_epoch(self) -> int:
        """The epoch the next training pass starts at: the restored one when resuming.

        Lightning creates the loader and its iterator (which starts the workers prefetching
        sampler indices) while it configures the optimizers, before it restores the loops' state
        and long before it calls ``set_epoch``: a sampler created at epoch 0 would make a resumed
        run replay epoch 0's items. The data module's own state (:meth:`state_dict`, restored
        before that) carries the epoch instead.
        """
        return max(self._trainer_epoch(), self._resumed_epoch)

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints by Lightning: the epoch a run resumed from this point starts at."""
        return {"train_epoch": self._trainer_epoch()}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resumed_epoch = int(state_dict.get("train_epoch", 0))

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup('validate') first"
        # A fixed, unshuffled key range: every validation pass sees the same triplets.
        return self._loader(self.val_set, range(len(self.val_set)))
