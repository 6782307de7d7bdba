"""``mixrep evaluate-transfer``: a regression head against the baselines, on held-out songs and styles.

Items are :class:`~mixrep.training.head_data.TransferDataset` items of the *test* split (songs the
head never saw) with a style seed of their own (style draws it never saw), for both reference
kinds: ``console`` (rendered by the console with parameters from the prior: ground truth known)
and ``pedalboard`` (rendered by the Stage 1 mixing-style space: the console can only approximate
it). Every method is scored on the same items:

* ``sum``: the plain sum of the level-aligned tracks (equal loudness);
* ``mean``: the console at the mean training parameters (the prior's mean raw strip and bus rows);
  ``mean+balance``: then its faders set to the reference's stem balance, level and stereo
  (:func:`~mixrep.inference.balance.match_balance`: measured, not learned);
* ``retrieval``: the parameters of the training reference nearest in embedding space (a bank of
  console-kind training items);
* ``head``: the regression head's prediction; ``head+balance``: then balance-matched (what
  ``mixrep mix`` does by default); ``head+refine``: balance-matched, then refined for ``refine_steps``
  with :meth:`~mixrep.inference.StyleTransfer.refine`'s default objective (``mixrep mix --refine-steps``);
* ``fit``: the console fitted directly to the target (``mixrep console fit``'s optimiser; the upper
  bound).

Scores: the audio loss (:class:`~mixrep.console.MixLoss` of RMS-normalised mixes, what the head is
trained on), audio-feature errors (:func:`~mixrep.console.audio_features.feature_errors`), and, on
console references, parameter errors: relative track gain (dB, each song's mean removed), pan,
EQ curve (dB), compressor threshold (dB), reverb decay (s) and per-type normalised errors.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from mixrep.console import ConsoleBatch, FitConfig, MixingConsole, MixLoss, fit, rms_normalise
from mixrep.console.audio_features import feature_errors
from mixrep.console.strips import StripLayout, mask_from_keep, strip_rows
from mixrep.constants import STEMS
from mixrep.graphs.prune import PruneConfig, prune_console
from mixrep.graphs.recovery import TrackLevels, track_levels
from mixrep.corpora.synthetic import TRACKS
from mixrep.training.head_data import TransferDataset
from mixrep.inference import StyleTransfer
from mixrep.inference.balance import match_balance

log = logging.getLogger(__name__)

METHODS = ("sum", "mean", "mean+balance", "retrieval", "head", "head+balance", "head sparse", "head+refine", "fit",
           "prune search", "head sparse - search")


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


@dataclass
class GraphScores:
    """Graph prediction: per processor type, the predicted keep probabilities and the truth."""

    probabilities: dict[str, list[float]] = field(default_factory=dict)
    truth: dict[str, list[float]] = field(default_factory=dict)
    frequency: dict[str, float] = field(default_factory=dict)

    def add(self, node_type: str, probability: float, kept: float) -> None:
        self.probabilities.setdefault(node_type, []).append(probability)
        self.truth.setdefault(node_type, []).append(kept)

    def table(self) -> dict[str, dict[str, float]]:
        """Per type: ``n``, ``kept`` share, and F1 / AUROC of the head, of keep-everything and of
        keeping each type at its training frequency (F1 at probability 0.5; AUROC 0.5 for constants)."""
        from sklearn.metrics import f1_score, roc_auc_score

        out = {}
        for t, probabilities in self.probabilities.items():
            truth = np.array(self.truth[t]) > 0.5
            p = np.array(probabilities)
            both = truth.any() and not truth.all()
            frequency = self.frequency.get(t, float(truth.mean()))
            out[t] = {"n": len(p), "kept": float(truth.mean()),
                      "head_f1": float(f1_score(truth, p >= 0.5, zero_division=0.0)),
                      "head_auroc": float(roc_auc_score(truth, p)) if both else float("nan"),
                      "all_f1": float(f1_score(truth, np.ones_like(truth), zero_division=0.0)),
                      "frequency_f1": float(f1_score(truth, np.full_like(truth, frequency >= 0.5), zero_division=0.0)),
                      "constant_auroc": 0.5}
        return out


class TransferEvaluation:
    """Scores a head and the baselines (see the module docstring).

    Args:
        transfer: the head to evaluate.
        items: items per reference kind.
        refine_steps, fit_steps: steps of refinement and of the upper-bound fit (0 skips them).
        bank_items: training references of the retrieval baseline (and of the type frequencies).
        prune_items: console items on which the pruning search runs for comparison with the
            predicted sparse graph (0 skips it); prune: its settings.
        prior: the console-parameter prior of the items (default: the head's training prior).
        seed: style seed of the test items (differs from training's).
    """

    def __init__(self, transfer: StyleTransfer, items: int = 8, refine_steps: int = 20, fit_steps: int = 150,
                 bank_items: int = 64, clip_seconds: float | None = None, seed: int = 1234, num_songs: int | None = None,
                 prior: dict | None = None, prune_items: int = 0, prune: PruneConfig | None = None) -> None:
        self.transfer, self.items = transfer, items
        self.refine_steps, self.fit_steps, self.bank_items = refine_steps, fit_steps, bank_items
        self.prune_items = prune_items
        data = transfer.data_config
        prior = data.get("prior") if prior is None else prior
        options = {"num_songs": num_songs or data.get("num_songs", 96), "song_seconds": data.get("song_seconds", 12.0),
                   "clip_seconds": clip_seconds or data.get("clip_seconds", 3.0), "prior": prior,
                   "audible_db": data.get("audible_db", 0.0)}  # heads from before audibility: every drawn processor
        spec = transfer.spec
        self.datasets = {kind: TransferDataset(spec, "test", items, pedalboard_fraction=float(kind == "pedalboard"),
                                               seed=seed, **options)
                         for kind in ("console", "pedalboard")}
        self.bank_source = TransferDataset(spec, "train", bank_items, pedalboard_fraction=0.0, seed=seed + 1,
                                           min_tracks=len(TRACKS), **options)
        self.prune = prune or PruneConfig(fit=FitConfig(steps=fit_steps, progress=False), rounds=4, finetune_steps=30,
                                          progress=False)
        self.loss = MixLoss(spec.sample_rate).to(transfer.device)
        self.processors = transfer.processors
        self.graphs = GraphScores()
        self._cache: dict[tuple[str, str, int], dict[str, float]] = {}
        self._bank_items: list[dict] | None = None

    @torch.no_grad()
    def _bank(self) -> list[dict]:
        bank = []
        for i in range(self.bank_items):
            item = self.bank_source[i]
            item["vector"] = self.transfer.reference_embedding(item["reference"], self.transfer.sample_rate)
            bank.append(item)
        return bank

    def _console(self, item: dict, track_rows: Tensor, group_rows: Tensor, track_keep: Tensor | None = None,
                 group_keep: Tensor | None = None) -> MixingConsole:
        """A console for ``item``'s tracks: strip rows ``(K, size)``, bus rows ``(4, size)`` (STEMS
        order) and, optionally, the graph's keep rows (absent processors masked)."""
        graph = self.transfer.spec.graph(item["names"], item["stems"])
        k = len(item["names"])
        present = torch.tensor([[c in item["stems"] for c in STEMS]])
        params = ConsoleBatch([graph]).params_from_strips(
            self.transfer.track_layout.unflatten(track_rows[None].float()),
            self.transfer.group_layout.unflatten(group_rows[None].float()), torch.ones(1, k, dtype=torch.bool), present)
        console = MixingConsole(graph, self.processors, params)
        if track_keep is not None:
            console.set_mask(mask_from_keep(graph, track_keep, group_keep[present[0]], self.transfer.track_layout,
                                            self.transfer.group_layout))
        return console

    def _score(self, scores: TransferScores, method: str, item: dict, console: MixingConsole | None,
               truth: TrackLevels | None, seconds: float | None = None) -> float:
        """Score one method's mix of ``item`` (``console`` None: the plain sum); returns its audio loss."""
        tracks, target = item["tracks"], item["target"]
        with torch.no_grad():
            mix = tracks.sum(0) if console is None else console.render(tracks)
        values = {"audio_loss": float(self.loss(rms_normalise(mix[None]), rms_normalise(target[None])))}
        values.update(feature_errors(rms_normalise(mix[None]), rms_normalise(target[None]), self.transfer.sample_rate))
        if seconds is not None:
            values["seconds"] = seconds
        if item["has_theta"] and console is not None:
            if console.graph.num_processors() == self.full_processors(item):
                values.update(physical_errors(self._rows(console), item["track_theta"], self.transfer.track_layout,
                                              self.processors))
            levels = track_levels(console, tracks)
            error = (levels.gain_db - levels.gain_db.mean()) - (truth.gain_db - truth.gain_db.mean())
            values["level_db"] = float(error.abs().mean())
            values["level_pan"] = float((levels.pan - truth.pan).abs().mean())
        scores.add(method, item["kind"], values)
        return values["audio_loss"]

    def full_processors(self, item: dict) -> int:
        return self.transfer.spec.graph(item["names"], item["stems"]).num_processors()

    def _graph_scores(self, item: dict, prediction) -> None:
        graph = prediction.console.graph
        truth = mask_from_keep(graph, item["track_keep"], item["group_keep"][[c in item["stems"] for c in STEMS]],
                               self.transfer.track_layout, self.transfer.group_layout)
        for v, t in enumerate(graph.node_types):
            if t not in ("input", "mix", "output", "gain_pan"):
                self.graphs.add(t, float(prediction.keep_probability[v]), float(truth[v]))

    def run(self, progress: bool = True) -> TransferScores:
        """Score every method on every item. Methods that do not depend on the head (sum, mean,
        retrieval, fit, prune search) are computed once per evaluation and reused when
        :meth:`with_head` swaps in another head trained against the same encoder."""
        scores = TransferScores()
        self.graphs = GraphScores()
        if self._bank_items is None:
            self._bank_items = self._bank()
        bank = self._bank_items
        bank_vectors = torch.stack([b["vector"] for b in bank])
        dim = self.transfer.encoder.embedding_dim  # retrieval in embedding space (cosine)
        mean_track = torch.cat([b["track_theta"] for b in bank]).mean(0)
        mean_group = torch.cat([b["group_theta"] for b in bank]).mean(0)
        keeps = torch.cat([b["track_keep"] for b in bank])
        self.graphs.frequency = {t: float(keeps[:, i].mean()) for i, t in enumerate(self.transfer.track_layout.types)}
        roles = [name for name, _ in TRACKS]
        jobs = [(kind, i) for kind in self.datasets for i in range(self.items)]
        pruned = 0
        for kind, i in tqdm(jobs, desc="evaluate-transfer", disable=not progress):
            item = self.datasets[kind][i]
            tracks, k = item["tracks"], len(item["names"])
            truth = None
            if item["has_theta"]:
                truth = track_levels(self._console(item, item["track_theta"], item["group_theta"], item["track_keep"],
                                                   item["group_keep"]), tracks)

            def mean_console():
                return self._console(item, mean_track.expand(k, -1), mean_group.expand(len(STEMS), -1))

            def balanced_mean_console():
                console = mean_console()
                match_balance(console, tracks, item["stems"], item["reference"])
                return console

            def retrieval_console():
                near = bank[int((bank_vectors[:, :dim] @ embedding[:dim]).argmax())]
                order = [roles.index(n) for n in item["names"]]
                return self._console(item, near["track_theta"][order], near["group_theta"], near["track_keep"][order],
                                     near["group_keep"])

            def fitted_console():
                console = mean_console()
                clip = tracks.shape[-1] / self.transfer.sample_rate
                fit(console, tracks, item["target"], FitConfig(steps=self.fit_steps, crop_seconds=clip,
                                                               warmup_seconds=min(0.5, clip / 4), progress=False))
                return console

            def searched_console():
                clip = tracks.shape[-1] / self.transfer.sample_rate
                config = dataclasses.replace(self.prune, fit=dataclasses.replace(
                    self.prune.fit, crop_seconds=clip, warmup_seconds=min(0.5, clip / 4)))
                return prune_console(mean_console(), tracks, item["target"], config).console

            embedding = self.transfer.reference_embedding(item["reference"], self.transfer.sample_rate)
            self._cached(scores, "sum", item, i, lambda: None, truth)
            self._cached(scores, "mean", item, i, mean_console, truth)
            self._cached(scores, "mean+balance", item, i, balanced_mean_console, truth)
            self._cached(scores, "retrieval", item, i, retrieval_console, truth)
            start = time.perf_counter()
            prediction = self.transfer.predict_graph(tracks, item["names"], item["stems"], embedding)
            predict_seconds = time.perf_counter() - start
            self._score(scores, "head", item, prediction.console, truth)
            if item["has_theta"]:
                self._graph_scores(item, prediction)
            start = time.perf_counter()
            match_balance(prediction.console, tracks, item["stems"], item["reference"])
            balance_seconds = time.perf_counter() - start
            self._score(scores, "head+balance", item, prediction.console, truth)
            start = time.perf_counter()
            sparse = prediction.sparse()  # as `mixrep mix --sparse`: the kept processors, balance-matched
            match_balance(sparse, tracks, item["stems"], item["reference"])
            sparse_seconds = predict_seconds + balance_seconds + time.perf_counter() - start
            sparse_loss = self._score(scores, "head sparse", item, sparse, truth, sparse_seconds)
            if self.refine_steps:
                console = prediction.console
                self.transfer.refine(console, tracks, item["stems"], embedding, item["reference"], self.refine_steps)
                self._score(scores, "head+refine", item, console, truth)
            if self.fit_steps:
                self._cached(scores, "fit", item, i, fitted_console, truth)
            if item["has_theta"] and pruned < self.prune_items:
                pruned += 1
                search_loss = self._cached(scores, "prune search", item, i, searched_console, truth, timed=True)
                scores.add("head sparse - search", item["kind"], {"audio_loss": sparse_loss - search_loss})
        return scores

    def _cached(self, scores: TransferScores, method: str, item: dict, index: int, make_console, truth,
                timed: bool = False) -> float:
        """Score a head-independent method once per item (``make_console()``: its console, None
        for the plain sum); later heads reuse the values. Returns the audio loss."""
        key = (method, item["kind"], index)
        if key not in self._cache:
            start = time.perf_counter()
            console = make_console()
            seconds = time.perf_counter() - start if timed else None
            probe = TransferScores()
            self._score(probe, method, item, console, truth, seconds)
            self._cache[key] = {name: values[0] for name, values in probe.scores[(method, item["kind"])].items()}
        scores.add(method, item["kind"], self._cache[key])
        return self._cache[key]["audio_loss"]

    def with_head(self, transfer: StyleTransfer) -> TransferEvaluation:
        """This evaluation (same items, cached baselines) for another head of the same encoder and console.

        Raises:
            ValueError: the head uses another encoder or console (the baselines would differ).
        """
        if transfer.encoder.model_hash != self.transfer.encoder.model_hash or transfer.spec != self.transfer.spec:
            raise ValueError("heads compared on one evaluation must share the encoder and the console")
        self.transfer = transfer
        return self

    def _rows(self, console: MixingConsole) -> Tensor:
        rows, _ = strip_rows(console.graph, console.parameter_dict(), self.transfer.track_layout, None)
        return rows.detach()


def format_transfer_table(scores: TransferScores,
                          columns=("audio_loss", "level_db", "level_pan", "gain_db", "pan", "rms_db", "bark_mid_db")) -> str:
    """A plain-text table: method x kind rows, the mean of each score."""
    lines = [f"{'method':<21} {'kind':<11} " + " ".join(f"{c:>12}" for c in columns)]
    for kind in ("console", "pedalboard"):
        for method in METHODS:
            if (method, kind) not in scores.scores:
                continue
            lines.append(f"{method:<21} {kind:<11} " + " ".join(f"{scores.mean(method, kind, c):>12.3f}" for c in columns))
    return "\n".join(lines)


def format_graph_table(graphs: GraphScores) -> str:
    """Per processor type: F1 and AUROC of the head against the two baselines."""
    lines = [f"{'type':<11} {'n':>4} {'kept':>6} {'head F1':>8} {'all F1':>7} {'freq F1':>8} {'head AUROC':>11}"]
    for t, row in graphs.table().items():
        lines.append(f"{t:<11} {row['n']:>4} {row['kept']:>6.2f} {row['head_f1']:>8.3f} {row['all_f1']:>7.3f} "
                     f"{row['frequency_f1']:>8.3f} {row['head_auroc']:>11.3f}")
    return "\n".join(lines)
