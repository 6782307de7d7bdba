"""Stage 2 training data: raw multitracks, a reference mixed in a known style, the target mix.

An item is a song X's raw tracks, the mix of X in a style (the target), and a *different* song Y
mixed in the same style (the reference), so a head can only succeed by reading the style from
the reference's embedding, never by copying content. Two kinds of style:

* ``console``: console parameters theta drawn from the :class:`~mixrep.console.MusicalPrior`
  (physical units) and rendered by the differentiable console itself; theta is the ground truth
  of the parameter loss and of the parameter errors in evaluation.
* ``pedalboard``: X and Y mixed by one identical pedalboard chain of the Stage 1 mixing-style
  space (:mod:`mixrep.styles.mix_style`), references the console can only approximate (no
  ground-truth parameters).

Raw tracks are loudness-aligned before anything sees them and references normalised to the
style space's loudness target, in training and in ``mixrep mix`` alike
(:func:`~mixrep.console.spec.align_track_levels`, :func:`~mixrep.console.spec.normalise_loudness`). Each item draws a random subset of the song's
tracks (at least ``min_tracks``), so the head sees variable track counts.

Shape:
    tracks ``(K, 2, samples)``, target ``(2, samples)``, reference stems ``(4, 2, samples)``;
    batches pad tracks to ``(B, K_max, 2, samples)`` with ``track_mask`` ``(B, K_max)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mixrep.console import MusicalPrior
from mixrep.console.spec import ConsoleSpec, align_track_levels, normalise_loudness
from mixrep.console.strips import group_outputs, strip_keep, strip_rows
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, SyntheticCorpus, split_for_index
from mixrep.graphs.cases import draw_console
from mixrep.styles.mix_style import MixStyleConfig, render_mix, sample_mix_style

KINDS = ("console", "pedalboard")


class TransferDataset(Dataset):
    """Items of (raw tracks of X, target = X in a style, reference = Y in that style).

    Args:
        console: the console spec (sample rate, chains).
        split: ``train`` items are drawn afresh every epoch; ``val``/``test`` items are fixed by
            their index.
        items: items per epoch.
        num_songs, song_seconds, corpus_seed: the synthetic corpus (the split is
            :func:`~mixrep.corpora.synthetic.split_for_index` with 10% val, 10% test).
        clip_seconds: crop length.
        pedalboard_fraction: share of items with a pedalboard reference.
        min_tracks: fewest tracks an item keeps.
        prior: console-parameter prior overrides (fields of :class:`MusicalPrior`); its
            ``active_probability`` (per processor type) draws sparse graphs, the ground truth of
            graph prediction.
        style_space: mixing-style space overrides (:meth:`MixStyleConfig.from_dict`).
        audible_db: a drawn optional processor (a type whose ``active_probability`` is below 1)
            stays in the ground-truth graph only if it changes its own input in the reference by
            at least this much (:func:`~mixrep.graphs.audibility.processor_change_db`); the
            others are bypassed before the target and the reference are rendered. 0 keeps
            every drawn processor.
        seed: item seed.
    """

    def __init__(self, console: ConsoleSpec, split: str = "train", items: int = 256, num_songs: int = 96,
                 song_seconds: float = 12.0, corpus_seed: int = 0, clip_seconds: float = 3.0,
                 pedalboard_fraction: float = 0.3, min_tracks: int = 2, prior: dict | None = None,
                 style_space: dict | None = None, audible_db: float = 1.0, seed: int = 0) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if not 0.0 <= pedalboard_fraction <= 1.0:
            raise ValueError(f"pedalboard_fraction must be in [0, 1], got {pedalboard_fraction}")
        if not 1 <= min_tracks <= len(TRACKS):
            raise ValueError(f"min_tracks must be in [1, {len(TRACKS)}], got {min_tracks}")
        self.console, self.split, self.items = console, split, items
        self.clip_seconds, self.pedalboard_fraction, self.min_tracks = clip_seconds, pedalboard_fraction, min_tracks
        self.prior = MusicalPrior(**(prior or {}))
        self.style_space = MixStyleConfig.from_dict(style_space) if style_space else MixStyleConfig()
        if audible_db < 0:
            raise ValueError(f"audible_db must be >= 0, got {audible_db}")
        self.audible_db = audible_db
        self.seed = seed
        self.corpus = SyntheticCorpus(SynthConfig(num_songs=num_songs, seed=corpus_seed, song_seconds=song_seconds,
                                                  sample_rate=console.sample_rate), cache_songs=num_songs)
        self.songs = [i for i in range(num_songs) if split_for_index(i, num_songs, 0.1, 0.1) == split]
        if len(self.songs) < 2:
            raise ValueError(f"the {split} split of {num_songs} synthetic songs has {len(self.songs)} songs; "
                             f"items need two (raise num_songs)")
        self.processors = console.processors()
        self.track_layout, self.group_layout = console.layouts(self.processors)
        self.clip_samples = int(round(clip_seconds * console.sample_rate))
        self._calls = 0

    def __len__(self) -> int:
        return self.items

    def _rng(self, index: int) -> np.random.Generator:
        # train: new items every epoch (the call count of this process, persistent workers included)
        self._calls += 1
        draw = [torch.initial_seed() % 2**32, self._calls] if self.split == "train" else []
        return np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), index, *draw])

    def _crop(self, song: int, rng: np.random.Generator, keep: list[int]) -> np.ndarray:
        tracks = self.corpus[song].tracks[keep]
        start = int(rng.integers(0, max(1, tracks.shape[-1] - self.clip_samples)))
        return align_track_levels(tracks[..., start: start + self.clip_samples])

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        x, y = rng.choice(self.songs, size=2, replace=False)
        k = int(rng.integers(self.min_tracks, len(TRACKS) + 1))
        keep = sorted(rng.choice(len(TRACKS), size=k, replace=False).tolist())
        names = [TRACKS[i][0] for i in keep]
        stems = [TRACKS[i][1] for i in keep]
        x_tracks, y_tracks = self._crop(int(x), rng, keep), self._crop(int(y), rng, keep)
        kind = "pedalboard" if rng.random() < self.pedalboard_fraction else "console"
        sr = self.console.sample_rate
        groups = torch.tensor([STEMS.index(s) for s in stems])
        track_theta = torch.zeros(k, self.track_layout.size)
        group_theta = torch.zeros(len(STEMS), self.group_layout.size)
        track_keep = torch.ones(k, len(self.track_layout.types))
        group_keep = torch.ones(len(STEMS), len(self.group_layout.types))
        if kind == "console":
            graph = self.console.graph(names, stems)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            # sparse graphs (prior.active_probability) holding what the reference lets one hear
            console = draw_console(graph, self.processors, self.prior, generator, torch.from_numpy(y_tracks),
                                   self.audible_db)
            theta = {t: {k: v.detach() for k, v in p.items()} for t, p in console.parameter_dict().items()}
            with torch.no_grad():
                nodes = console.render_graph(torch.from_numpy(y_tracks), keep_nodes=True).node_outputs
                target = console.render(torch.from_numpy(x_tracks))
                present = group_outputs(graph, nodes).numpy()
            reference = np.zeros((len(STEMS), 2, self.clip_samples), np.float32)
            present_classes = [s for s in STEMS if s in stems]
            for i, s in enumerate(present_classes):
                reference[STEMS.index(s)] = present[i]
            rows, bus_rows = strip_rows(graph, theta, self.track_layout, self.group_layout)
            track_theta = rows
            track_keep, bus_keep = strip_keep(console.graph, self.track_layout, self.group_layout)
            for i, s in enumerate(present_classes):
                group_theta[STEMS.index(s)] = bus_rows[i]
                group_keep[STEMS.index(s)] = bus_keep[i]
        else:
            style = sample_mix_style(self.style_space, rng, names=list(names) + list(STEMS))
            target = torch.from_numpy(render_mix(x_tracks, style, sr, names, stems).sum(0))
            reference = render_mix(y_tracks, style, sr, names, stems)
        return {
            "tracks": torch.from_numpy(x_tracks), "groups": groups, "names": names, "stems": stems,
            "target": target.float(), "reference": torch.from_numpy(normalise_loudness(reference, sr)),
            "track_theta": track_theta.float(), "group_theta": group_theta.float(),
            "track_keep": track_keep, "group_keep": group_keep,
            "has_theta": kind == "console", "kind": kind,
        }


@dataclass
class TransferBatch:
    """A padded batch (what :func:`collate_transfer` returns).

    Attributes:
        tracks: ``(B, K_max, 2, samples)``; track_mask, groups: ``(B, K_max)``.
        target: ``(B, 2, samples)``; reference: ``(B, 4, 2, samples)``.
        track_theta: ``(B, K_max, track_size)``; group_theta: ``(B, 4, group_size)``.
        track_keep: ``(B, K_max, track types)``, group_keep: ``(B, 4, group types)``: 1 where the
            processor was active in the graph that rendered the target (all 1 without ground truth).
        has_theta: ``(B,)`` bool (console references); kinds, names, stems: per song.
    """

    tracks: Tensor
    track_mask: Tensor
    groups: Tensor
    target: Tensor
    reference: Tensor
    track_theta: Tensor
    group_theta: Tensor
    track_keep: Tensor
    group_keep: Tensor
    has_theta: Tensor
    kinds: list[str]
    names: list[list[str]]
    stems: list[list[str]]

    def to(self, device) -> TransferBatch:
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return TransferBatch(**moved)


def collate_transfer(items: list[dict]) -> TransferBatch:
    """Pad variable track counts into one :class:`TransferBatch`."""
    b, k_max = len(items), max(len(it["names"]) for it in items)
    samples = items[0]["tracks"].shape[-1]
    tracks = torch.zeros(b, k_max, 2, samples)
    mask = torch.zeros(b, k_max, dtype=torch.bool)
    groups = torch.zeros(b, k_max, dtype=torch.long)
    theta = torch.zeros(b, k_max, items[0]["track_theta"].shape[-1])
    keep = torch.zeros(b, k_max, items[0]["track_keep"].shape[-1])
    for i, it in enumerate(items):
        k = len(it["names"])
        tracks[i, :k], mask[i, :k], groups[i, :k] = it["tracks"], True, it["groups"]
        theta[i, :k], keep[i, :k] = it["track_theta"], it["track_keep"]
    return TransferBatch(
        tracks, mask, groups, torch.stack([it["target"] for it in items]), torch.stack([it["reference"] for it in items]),
        theta, torch.stack([it["group_theta"] for it in items]), keep, torch.stack([it["group_keep"] for it in items]),
        torch.tensor([it["has_theta"] for it in items]),
        [it["kind"] for it in items], [it["names"] for it in items], [it["stems"] for it in items])


class TransferDataModule(pl.LightningDataModule):
    """Train/val loaders of :class:`TransferDataset` (LightningCLI ``data:`` section).

    Args:
        sample_rate, chain, group_chain, processor_options: the console (:class:`ConsoleSpec`).
        batch_size, num_workers: loader settings.
        train_items, val_items: items per epoch.
        Other arguments: see :class:`TransferDataset`.
    """

    def __init__(self, sample_rate: int = 22050, chain: str = "ecnsgdr", group_chain: str = "ecnsgdr",
                 processor_options: dict | None = None, batch_size: int = 8, num_workers: int = 1,
                 train_items: int = 256, val_items: int = 32, num_songs: int = 96, song_seconds: float = 12.0,
                 corpus_seed: int = 0, clip_seconds: float = 3.0, pedalboard_fraction: float = 0.3,
                 min_tracks: int = 2, prior: dict | None = None, style_space: dict | None = None,
                 audible_db: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        options = {"eq": {"bins": 256}, "reverb": {"ir_seconds": 1.5}} if processor_options is None else processor_options
        self.console = ConsoleSpec(sample_rate, chain, group_chain, options)
        self.dataset_args = {"num_songs": num_songs, "song_seconds": song_seconds, "corpus_seed": corpus_seed,
                             "clip_seconds": clip_seconds, "pedalboard_fraction": pedalboard_fraction,
                             "min_tracks": min_tracks, "prior": prior, "style_space": style_space,
                             "audible_db": audible_db, "seed": seed}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_items, self.val_items = train_items, val_items

    def dataset(self, split: str, items: int) -> TransferDataset:
        return TransferDataset(self.console, split, items, **self.dataset_args)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset("train", self.train_items), self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_transfer,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset("val", self.val_items), self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_transfer, persistent_workers=self.num_workers > 0)
