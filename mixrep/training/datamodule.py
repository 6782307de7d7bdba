"""LightningDataModule serving triplets from any source (generated corpora, FMA, folders, multitracks)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from mixrep.styles.chains import AugmentConfig
from mixrep.styles.mix_style import MixStyleConfig
from mixrep.constants import SAMPLE_RATE
from mixrep.corpora.rendered import GENERATED_KINDS, open_generated_corpora
from mixrep.training.strategies import make_strategy
from mixrep.styles.spaces import STYLE_SPACES, StyleSpace, make_style_space
from mixrep.corpora.timbre import timbre_ranges
from mixrep.tracks import Source
from mixrep.training.triplets import TRANSPORT_DTYPES, EpochSampler, TripletDataset


def _worker_init(_: int) -> None:
    # Each worker crops and restyles whole items; intra-op threads only contend.
    torch.set_num_threads(1)
    if torch.cuda.is_available():
        # Spawned workers start on cuda:0; under DDP, separate on this process's own GPU.
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def build_source(source: str | list[str], root: str | Path | None = None, *, sample_rate: int = SAMPLE_RATE,
                 synth_songs: int = 64, synth_song_seconds: float = 16.0, synth_seed: int = 0,
                 synth_cache_songs: int = 16, soundfonts: list[str] | None = None, soundfont_songs: int = 64,
                 soundfont_song_seconds: float = 16.0, corpus_dir: str | Path = "outputs/corpora",
                 fma_subset: str = "small", separator: str = "htdemucs", weights_path: str | None = None,
                 cache_dir: str | Path | None = None, device: str | None = None,
                 min_seconds: float | None = None, stem_cache: bool = True, progress: bool = True) -> Source:
    """Open a source by kind, wiring Demucs and the stem cache for sources of mixtures.

    Args:
        source: ``synth`` (built-in numpy corpus, no files), ``soundfont`` (the same song generator
            rendered with each of ``soundfonts``; with a ``root``, an existing rendered corpus), a
            list of both (one mixture of corpora, see :mod:`mixrep.corpora.rendered`), ``stems``
            (``<song>/<stem>.wav`` folders), ``fma`` (FMA root with ``fma_metadata/`` and
            ``fma_<size>/``), ``folder`` (any audio) or a multitrack layout (``slakh``,
            ``medleydb``, ``moisesdb``, ``tracks``).
        root: dataset root; unused for generated corpora.
        synth_cache_songs: synthetic songs each process keeps in memory (LRU); songs outside it
            are re-synthesised on access (~0.1 s each at 22.05 kHz).
        soundfonts: paths or installed names (``FluidR3_GM``, ``MuseScore_General``, ``TimGM6mb``);
            default: the system's default soundfont.
        soundfont_songs, soundfont_song_seconds: songs per soundfont and their length.
        corpus_dir: where rendered soundfont corpora are cached.
        cache_dir: where separated stems are stored (default ``<root>/.mixrep_stems``).
        stem_cache: ``False`` separates every crop on the fly instead (no disk, much slower).
        min_seconds: shorter tracks of file sources are skipped (the triplet data module passes
            two clip lengths).
    """
    from mixrep.datasets.registry import open_source

    kinds = [source] if isinstance(source, str) else list(source)
    if all(kind in GENERATED_KINDS for kind in kinds) and not (kinds == ["soundfont"] and root is not None):
        if root is not None:
            raise ValueError(f"generated corpora ({', '.join(kinds)}) take no root (got {root}); to read a rendered "
                             "soundfont corpus pass source: soundfont with its folder as the root")
        return open_generated_corpora(
            kinds, sample_rate=sample_rate, seed=synth_seed, synth_songs=synth_songs,
            synth_song_seconds=synth_song_seconds, synth_cache_songs=synth_cache_songs,
            soundfonts=soundfonts if soundfonts else _default_soundfonts(), soundfont_songs=soundfont_songs,
            soundfont_song_seconds=soundfont_song_seconds, corpus_dir=corpus_dir, min_seconds=min_seconds,
            progress=progress)
    if len(kinds) != 1:
        raise ValueError(f"a list of sources may combine the generated corpora {', '.join(GENERATED_KINDS)}; "
                         f"got {kinds}")
    source = kinds[0]
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


def _default_soundfonts() -> list[str]:
    from mixrep.audio.fluidsynth import default_soundfont

    path = default_soundfont()
    return [] if path is None else [str(path)]


class TripletDataModule(L.LightningDataModule):
    """Train/val triplet loaders with seeded, reproducible sampling.

    Args:
        source: ``synth``, ``soundfont``, a list of both, ``stems``, ``fma``, ``folder`` or a
            multitrack layout (see :func:`build_source`).
        root: dataset root for file sources.
        strategy: ``same_song``, ``same_chain``, ``crossed`` or ``mixed`` (see :mod:`mixrep.training.strategies`).
        same_chain_weight: share of ``same_chain`` items when ``strategy="mixed"``.
        clip_seconds: clip length in seconds.
        sample_rate: model sample rate in Hz (the stems' rate; the front end runs in the model).
        styles: where the styles of pairs (and of the validation style set) come from: ``chains``
            (per-stem effect chains, ``augment``) or ``mix_style`` (the mixing-style space,
            ``mix_style``: a strip per track, buses, master, loudness target); see
            :mod:`mixrep.styles.spaces`.
        augment: the ``chains`` style space.
        mix_style: the ``mix_style`` style space.
        soundfonts, soundfont_songs, soundfont_song_seconds, corpus_dir: the soundfont corpora
            (rendered once, cached in ``corpus_dir``; see :func:`build_source`).
        batch_size: triplets per batch.
        num_workers: DataLoader worker processes.
        items_per_epoch: training items per epoch (default: one per training track).
        synth_songs, synth_song_seconds, synth_cache_songs: size of the built-in corpus and how
            many of its songs each process keeps in memory.
        seed: seed of every random draw.
        timbre_jitter_db: training clips only: every track of a song read gets a random static EQ of
            shelves and a peak within this many dB (:mod:`mixrep.corpora.timbre`), timbre the
            embedding must ignore; 0 turns it off.
        transport_dtype: dtype of the stems in a batch, ``float32`` or ``float16`` (half the
            bytes workers copy and the host sends to the GPU; 11-bit mantissa, about -66 dB of
            relative rounding error, as the stem cache already stores).
        fma_subset, separator, weights_path, cache_dir, stem_cache: file sources only: FMA size
            subset, Demucs model name, local weights, stem-cache folder, cache on/off.
    """

    def __init__(self, source: str | list[str] = "synth", root: str | None = None, strategy: str = "same_song",
                 same_chain_weight: float = 0.5, clip_seconds: float = 4.0, sample_rate: int = SAMPLE_RATE,
                 styles: str = "chains", augment: AugmentConfig | None = None, mix_style: MixStyleConfig | None = None,
                 batch_size: int = 24, num_workers: int = 2,
                 items_per_epoch: int | None = None, seed: int = 0, transport_dtype: str = "float32",
                 timbre_jitter_db: float = 0.0,
                 synth_songs: int = 64,
                 synth_song_seconds: float = 16.0, synth_cache_songs: int = 16, soundfonts: list[str] | None = None,
                 soundfont_songs: int = 64, soundfont_song_seconds: float = 16.0, corpus_dir: str = "outputs/corpora",
                 fma_subset: str = "small", separator: str = "htdemucs",
                 weights_path: str | None = None, cache_dir: str | None = None, stem_cache: bool = True) -> None:
        super().__init__()
        if transport_dtype not in TRANSPORT_DTYPES:
            raise ValueError(f"transport_dtype={transport_dtype!r}: use one of {', '.join(TRANSPORT_DTYPES)}")
        if styles not in STYLE_SPACES:
            raise ValueError(f"styles={styles!r}: use one of {', '.join(STYLE_SPACES)}")
        timbre_ranges(timbre_jitter_db)  # refuses a negative jitter here, not in a worker
        self.augment = augment or AugmentConfig()
        self.mix_style = mix_style or MixStyleConfig()
        # Checkpoints hold plain builtins only (they load with torch.load(weights_only=True)).
        self.save_hyperparameters(ignore=["augment", "mix_style"])
        self.hparams["augment"] = self.augment.to_dict()
        self.hparams["mix_style"] = self.mix_style.to_dict()
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
                soundfonts=h.soundfonts, soundfont_songs=h.soundfont_songs,
                soundfont_song_seconds=h.soundfont_song_seconds, corpus_dir=h.corpus_dir, fma_subset=h.fma_subset,
                separator=h.separator, weights_path=h.weights_path, cache_dir=h.cache_dir,
                stem_cache=h.stem_cache, min_seconds=2 * h.clip_seconds)
        return self._source

    @property
    def style_space(self) -> StyleSpace:
        """Where the styles of training pairs and of the validation style set come from."""
        return make_style_space(self.hparams.styles, self.augment, self.mix_style)

    def make_dataset(self, split: str, seed_offset: int = 0) -> TripletDataset:
        h = self.hparams
        strategy = make_strategy(h.strategy, self.style_space, h.same_chain_weight)
        timbre = timbre_ranges(h.timbre_jitter_db) if split == "train" and h.timbre_jitter_db > 0 else None
        return TripletDataset(self.source, self.source.tracks(split), strategy, h.clip_seconds,
                              seed=h.seed + seed_offset, transport_dtype=h.transport_dtype, timbre=timbre)

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
        group = self.train_set.group_size
        size = self.hparams.items_per_epoch or len(self.train_set) // group * group
        return self._loader(self.train_set, EpochSampler(size, seed=self.hparams.seed, epoch=self._starting_epoch(),
                                                         group_size=group))

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
