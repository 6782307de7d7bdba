"""``mixrep evaluate-transfer``: a regression head against the baselines, on held-out songs and styles.

Items are :class:`~mixrep.data.transfer.TransferDataset` items of the *test* split (songs the
head never saw) with a style seed of their own (style draws it never saw), for both reference
kinds: ``console`` (rendered by the console with parameters from the prior: ground truth known)
and ``pedalboard`` (rendered by the Stage 1 mixing-style space: the console can only approximate
it). Every method is scored on the same items:

* ``sum``: the plain sum of the level-aligned tracks (equal loudness);
* ``mean``: the console at the mean training parameters (the prior's mean raw strip and bus rows);
* ``retrieval``: the parameters of the training reference nearest in embedding space (a bank of
  console-kind training items);
* ``head``: the regression head's prediction; ``head+refine``: then refined on the embedding
  distance (+ audio features) for ``refine_steps``;
* ``fit``: the console fitted directly to the target (``mixrep console fit``'s optimiser; the upper
  bound).

Scores: the audio loss (:class:`~mixrep.console.MixLoss` of RMS-normalised mixes, what the head is
trained on), audio-feature errors (:func:`~mixrep.console.audio_features.feature_errors`), and, on
console references, parameter errors: relative track gain (dB, each song's mean removed), pan,
EQ curve (dB), compressor threshold (dB), reverb decay (s) and per-type normalised errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from mixrep.console import ConsoleBatch, FitConfig, MixingConsole, MixLoss, TrackLevels, fit, track_levels
from mixrep.console.audio_features import feature_errors
from mixrep.console.strips import StripLayout, strip_rows
from mixrep.constants import STEMS
from mixrep.data.synthetic import TRACKS
from mixrep.data.transfer import TransferDataset
from mixrep.transfer import StyleTransfer

log = logging.getLogger(__name__)

METHODS = ("sum", "mean", "retrieval", "head", "head+refine", "fit")


def rms_normalise(mix: Tensor) -> Tensor:
    return mix / mix.pow(2).mean((-1, -2), keepdim=True).add(1e-16).sqrt()


@dataclass
class TransferScores:
    """Per method and reference kind: lists of per-item scores (name -> values)."""

    scores: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)

    def add(self, method: str, kind: str, values: dict[str, float]) -> None:
        bucket = self.scores.setdefault((method, kind), {})
        for name, value in values.items():
            bucket.setdefault(name, []).append(float(value))

    def mean(self, method: str, kind: str, name: str) -> float:
        values = self.scores.get((method, kind), {}).get(name)
        return float(np.mean(values)) if values else float("nan")

    def to_dict(self) -> dict:
        return {f"{m}/{k}": {n: float(np.mean(v)) for n, v in s.items()} for (m, k), s in self.scores.items()}


def physical_errors(pred: Tensor, truth: Tensor, layout: StripLayout, processors: dict) -> dict[str, float]:
    """Parameter errors of track rows ``(K, size)`` in physical units, plus per-type normalised L1."""
    out: dict[str, float] = {}
    phys = {}
    for which, rows in (("pred", pred), ("truth", truth)):
        params = layout.unflatten(rows)
        phys[which] = {t: processors[t].to_physical(**{k: v for k, v in p.items() if k != "dry_wet_logit"})
                       for t, p in params.items()}
    p, t = phys["pred"], phys["truth"]
    if "gain_pan" in p:
        def rel(g: Tensor) -> Tensor:
            return g - g.mean()

        out["gain_db"] = float((rel(p["gain_pan"]["gain_db"]) - rel(t["gain_pan"]["gain_db"])).abs().mean())
        out["pan"] = float((p["gain_pan"]["pan"] - t["gain_pan"]["pan"]).abs().mean())
    if "eq" in p:
        out["eq_db"] = float((p["eq"]["gain_db"] - t["eq"]["gain_db"]).abs().mean())
    if "compressor" in p:
        out["comp_threshold_db"] = float((p["compressor"]["threshold_db"] - t["compressor"]["threshold_db"]).abs().mean())
    if "reverb" in p:
        def decay(x: dict) -> Tensor:
            return x["reverb"]["rt60_seconds"].flatten(1).median(-1).values

        out["reverb_decay_s"] = float((decay(p) - decay(t)).abs().mean())
    if "imager" in p:
        out["width"] = float((p["imager"]["width"] - t["imager"]["width"]).abs().mean())
    error = (layout.normalise(pred) - layout.normalise(truth)).abs()
    for node_type, cols in layout.type_slices().items():
        out[f"norm_{node_type}"] = float(error[:, cols].mean())
    return out


class TransferEvaluation:
    """Scores a head and the baselines (see the module docstring).

    Args:
        transfer: the head to evaluate.
        items: items per reference kind.
        refine_steps, fit_steps: steps of refinement and of the upper-bound fit (0 skips them).
        bank_items: training references of the retrieval baseline.
        seed: style seed of the test items (differs from training's).
    """

    def __init__(self, transfer: StyleTransfer, items: int = 8, refine_steps: int = 20, fit_steps: int = 150,
                 bank_items: int = 64, clip_seconds: float = 3.0, seed: int = 1234, num_songs: int = 96) -> None:
        self.transfer, self.items = transfer, items
        self.refine_steps, self.fit_steps, self.bank_items = refine_steps, fit_steps, bank_items
        spec = transfer.spec
        self.datasets = {kind: TransferDataset(spec, "test", items, num_songs=num_songs, clip_seconds=clip_seconds,
                                               pedalboard_fraction=float(kind == "pedalboard"), seed=seed)
                         for kind in ("console", "pedalboard")}
        self.bank_source = TransferDataset(spec, "train", bank_items, num_songs=num_songs, clip_seconds=clip_seconds,
                                           pedalboard_fraction=0.0, seed=seed + 1, min_tracks=6)
        self.loss = MixLoss(spec.sample_rate).to(transfer.device)
        self.processors = transfer.processors

    @torch.no_grad()
    def _bank(self) -> tuple[Tensor, Tensor, Tensor]:
        """Embeddings ``(M, dim)``, full-role track rows ``(M, 6, size)`` and bus rows ``(M, 4, size)``."""
        embeddings, tracks, groups = [], [], []
        for i in range(self.bank_items):
            item = self.bank_source[i]
            embeddings.append(self.transfer.reference_embedding(item["reference"], self.transfer.sample_rate))
            tracks.append(item["track_theta"])
            groups.append(item["group_theta"])
        return torch.stack(embeddings), torch.stack(tracks), torch.stack(groups)

    def _console(self, item: dict, track_rows: Tensor, group_rows: Tensor) -> MixingConsole:
        graph = self.transfer.spec.graph(item["names"], item["stems"])
        k = len(item["names"])
        present = torch.tensor([[c in item["stems"] for c in STEMS]])
        params = ConsoleBatch([graph]).params_from_strips(
            self.transfer.track_layout.unflatten(track_rows[None].float()),
            self.transfer.group_layout.unflatten(group_rows[None].float()), torch.ones(1, k, dtype=torch.bool), present)
        return MixingConsole(graph, self.processors, params)

    def _score(self, scores: TransferScores, method: str, item: dict, mix: Tensor,
               console: MixingConsole | None, truth: TrackLevels | None) -> None:
        target = item["target"]
        values = {"audio_loss": float(self.loss(rms_normalise(mix[None]), rms_normalise(target[None])))}
        values.update(feature_errors(rms_normalise(mix[None]), rms_normalise(target[None]), self.transfer.sample_rate))
        if item["has_theta"] and console is not None:
            values.update(physical_errors(self._rows(console), item["track_theta"], self.transfer.track_layout,
                                          self.processors))
            levels = track_levels(console, item["tracks"])
            error = (levels.gain_db - levels.gain_db.mean()) - (truth.gain_db - truth.gain_db.mean())
            values["level_db"] = float(error.abs().mean())
            values["level_pan"] = float((levels.pan - truth.pan).abs().mean())
        scores.add(method, item["kind"], values)

    def run(self, progress: bool = True) -> TransferScores:
        scores = TransferScores()
        bank_embeddings, bank_tracks, bank_groups = self._bank()
        mean_track, mean_group = bank_tracks.flatten(0, 1).mean(0), bank_groups.flatten(0, 1).mean(0)
        roles = [name for name, _ in TRACKS]
        jobs = [(kind, i) for kind in self.datasets for i in range(self.items)]
        for kind, i in tqdm(jobs, desc="evaluate-transfer", disable=not progress):
            item = self.datasets[kind][i]
            tracks, k = item["tracks"], len(item["names"])
            truth = (track_levels(self._console(item, item["track_theta"], item["group_theta"]), tracks)
                     if item["has_theta"] else None)
            self._score(scores, "sum", item, tracks.sum(0), None, truth)
            with torch.no_grad():
                mean_rows = mean_track.expand(k, -1)
                console = self._console(item, mean_rows, mean_group.expand(len(STEMS), -1))
                self._score(scores, "mean", item, console.render(tracks), console, truth)
                embedding = self.transfer.reference_embedding(item["reference"], self.transfer.sample_rate)
                dim = self.transfer.encoder.embedding_dim  # retrieval in embedding space (cosine)
                nearest = int((bank_embeddings[:, :dim] @ embedding[:dim]).argmax())
                rows = bank_tracks[nearest][[roles.index(n) for n in item["names"]]]
                console = self._console(item, rows, bank_groups[nearest])
                self._score(scores, "retrieval", item, console.render(tracks), console, truth)
                console = self.transfer.predict(tracks, item["names"], item["stems"], embedding)
                self._score(scores, "head", item, console.render(tracks), console, truth)
            if self.refine_steps:
                self.transfer.refine(console, tracks, item["stems"], embedding, item["reference"], self.refine_steps)
                with torch.no_grad():
                    self._score(scores, "head+refine", item, console.render(tracks), console, truth)
            if self.fit_steps:
                console = self._console(item, mean_rows, mean_group.expand(len(STEMS), -1))
                clip = tracks.shape[-1] / self.transfer.sample_rate
                fit(console, tracks, item["target"], FitConfig(steps=self.fit_steps, crop_seconds=clip,
                                                               warmup_seconds=min(0.5, clip / 4), progress=False))
                with torch.no_grad():
                    self._score(scores, "fit", item, console.render(tracks), console, truth)
        return scores

    def _rows(self, console: MixingConsole) -> Tensor:
        rows, _ = strip_rows(console.graph, console.parameter_dict(), self.transfer.track_layout, None)
        return rows.detach()


def format_transfer_table(scores: TransferScores,
                          columns=("audio_loss", "level_db", "level_pan", "gain_db", "pan", "rms_db", "bark_mid_db")) -> str:
    """A plain-text table: method x kind rows, the mean of each score."""
    lines = [f"{'method':<12} {'kind':<11} " + " ".join(f"{c:>16}" for c in columns)]
    for kind in ("console", "pedalboard"):
        for method in METHODS:
            if (method, kind) not in scores.scores:
                continue
            lines.append(f"{method:<12} {kind:<11} " + " ".join(f"{scores.mean(method, kind, c):>16.3f}" for c in columns))
    return "\n".join(lines)
