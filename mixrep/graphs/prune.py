"""Mixing-graph search by iterative pruning (Lee et al. 2024, section 3, algorithms 1 and 3).

Fit the full console to ``(stems, mix)``, take its whole-song audio loss as ``best``, then run
``rounds`` rounds of *pruning trials* followed by *fine-tuning*. A trial removes a candidate set
of processors and evaluates the whole song; the removal is kept when the loss stays at most
``best + tolerance`` (``best`` then becomes ``min(best, loss)``), and undone otherwise. Unlike
Lee et al.'s algorithm 1, ``best`` also follows the loss after each fine-tuning when that is lower:
with a full fit shorter than Lee et al.'s 6k steps, fine-tuning keeps lowering the loss, and a
threshold anchored to the first fit would let every later removal cost far more than ``tau``.
Candidate sampling:

* ``"brute-force"``: every remaining processor, one at a time, in a random order;
* ``"dry-wet"`` (algorithm 3): sample a remaining type, try its least-weight processors
  (``dry_wet_fraction`` = 10% of the type's count at the round start, at least one); on a
  failure halve the fraction, and retire the type when a single processor fails;
* ``"hybrid"``: dry/wet, with brute force every ``brute_force_every``-th round (Lee et al.'s default).

Fine-tuning is :func:`~mixrep.console.fit.fit` on the remaining processors with the dry/wet
sparsity term (Lee et al. 2024, eq. 8), whose weight ``alpha_p`` ramps linearly from 0 to
``sparsity_weight`` (1e-2) over the first ``sparsity_ramp_fraction`` (2/3: 4k of 6k steps) of the
pruning phase's optimisation steps.

Lee et al. evaluate a trial by multiplying masks onto the dry/wet weights and remove the nodes at
the end of the round; here an accepted trial removes its processors from the graph at once
(:meth:`~mixrep.console.console.MixingConsole.pruned`, which renders exactly what the masked
console renders), so every later trial and fine-tuning step renders the smaller graph.

Resumable: with a ``state_path``, the search state (graph, raw parameters, candidate pools,
random state, history) is written atomically after the full fit, after every accepted trial and
around every fine-tuning; a killed run called again with the same inputs and settings continues
from the last write and ends with the same result as an uninterrupted run.

Shape:
    Stems ``(tracks, 2, samples)``; mix ``(2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, evaluate, fit
from mixrep.console.graph import PROCESSOR_TYPES, MixingGraph
from mixrep.console.loss import MixLoss
from mixrep.console.processors import DRY_WET, dry_wet_weight
from mixrep.errors import MixrepError
from mixrep.files import atomic_write_bytes, digest

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("hybrid", "brute-force", "dry-wet")
BRUTE_FORCE, DRY_WET_METHOD = "brute-force", "dry-wet"
STATE_FORMAT = "mixrep-prune-state/1"
_FINGERPRINT_PARTS = {"audio": "the audio (tracks, mix or their sample rate)",
                      "settings": "the pruning or fit settings",
                      "console": "the console (tracks, groups, chains or sample rate)"}


class PruneStateError(MixrepError):
    """A saved pruning state cannot be resumed (unreadable, or made by another run)."""


@dataclass
class PruneConfig:
    """Pruning settings; defaults are Lee et al.'s (DAFx 2024, section 3.3).

    Attributes:
        method: ``"hybrid"``, ``"brute-force"`` or ``"dry-wet"``.
        tolerance: ``tau``: a removal is kept when the loss stays at most ``best + tau``.
        rounds: ``N_iter`` rounds of trials + fine-tuning (Lee et al. 2024: 12).
        fit: settings of the full-console fit (Lee et al. 2024: 6k steps); fine-tuning reuses them with
            ``finetune_steps`` steps and the sparsity ramp.
        finetune_steps: optimisation steps after each round's trials (Lee et al. 2024: 500).
        sparsity_weight: final ``alpha_p`` of the dry/wet L1 term (Lee et al. 2024: 1e-2).
        sparsity_ramp_fraction: share of the pruning phase's steps over which ``alpha_p`` ramps
            linearly from 0 (Lee et al. 2024: the first 4k of 6k steps).
        dry_wet_fraction: first candidate share of a type in the dry/wet method (Lee et al. 2024: 10%).
        brute_force_every: hybrid rounds ``k, 2k, ...`` (1-based) use brute force (Lee et al. 2024: 4).
        seed: candidate sampling and fine-tuning crops.
        progress: progress bars for the fits.
    """

    method: str = "hybrid"
    tolerance: float = 0.01
    rounds: int = 12
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=6000))
    finetune_steps: int = 500
    sparsity_weight: float = 1e-2
    sparsity_ramp_fraction: float = 2.0 / 3.0
    dry_wet_fraction: float = 0.1
    brute_force_every: int = 4
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown pruning method {self.method!r}; use one of {list(METHODS)}")
        if not (self.tolerance >= 0.0 and math.isfinite(self.tolerance)):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance}")
        for name in ("rounds", "finetune_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.dry_wet_fraction <= 1.0:
            raise ValueError(f"dry_wet_fraction must lie in (0, 1], got {self.dry_wet_fraction}")
        if self.brute_force_every < 1:
            raise ValueError(f"brute_force_every must be >= 1, got {self.brute_force_every}")

    def round_method(self, round_number: int) -> str:
        """Candidate sampling of the 1-based round ``round_number``."""
        if self.method == "hybrid":
            return BRUTE_FORCE if round_number % self.brute_force_every == 0 else DRY_WET_METHOD
        return self.method

    def sparsity_at(self, step: int) -> float:
        """``alpha_p`` at the pruning phase's optimisation step ``step`` (0-based)."""
        ramp = self.sparsity_ramp_fraction * self.rounds * self.finetune_steps
        return self.sparsity_weight * (min(1.0, step / ramp) if ramp > 0 else 1.0)

    def fingerprint(self) -> dict:
        """The settings that change the result (JSON-able; ``progress`` left out)."""
        data = dataclasses.asdict(self)
        data.pop("progress")
        data["fit"].pop("progress")
        return data


@dataclass
class Trial:
    """One pruning trial.

    Attributes:
        round: 1-based round.
        method: ``"brute-force"`` or ``"dry-wet"``.
        node_type: type of the candidates.
        candidates: names of the processors tried for removal.
        loss: whole-song audio loss without them.
        threshold: ``best + tolerance`` the loss was compared with.
        accepted: whether they were removed.
        processors: processors left after the trial.
    """

    round: int
    method: str
    node_type: str
    candidates: list[str]
    loss: float
    threshold: float
    accepted: bool
    processors: int


@dataclass
class PruneRound:
    """One round: its trials' outcome and the fine-tuning after them.

    Attributes:
        loss: whole-song audio loss after the fine-tuning.
        sparsity_weight: ``alpha_p`` at the fine-tuning's first and last step.
        mean_dry_wet: mean dry/wet weight of the remaining processors after the fine-tuning.
        seconds: wall time of the round (trials + fine-tuning; after a resume, this session's).
        finetune_seconds: the fine-tuning's share of it (the rest is mostly trial renders).
    """

    round: int
    method: str
    trials: int
    accepted: int
    removed: int
    processors: int
    loss: float
    sparsity_weight: tuple[float, float]
    mean_dry_wet: float
    seconds: float
    finetune_seconds: float


@dataclass
class PruneResult:
    """What a pruning search found.

    Attributes:
        console: the pruned console (removed processors are gone from its graph).
        full_counts: processors per type in the full console.
        removed: names of the removed processors, in removal order.
        loss_initial: audio loss of the unfitted full console.
        loss_full: audio loss of the fitted full console (the first ``best``; with ``start_removed``,
            of the fitted starting graph).
        best: the final ``best`` (the lowest loss of the full console, the accepted trials and
            the fine-tuned graphs).
        loss_final: audio loss of the pruned console after the last fine-tuning.
        trials, rounds: the history.
        seconds: wall time of the search (all sessions of a resumed run).
    """

    console: MixingConsole
    full_counts: dict[str, int]
    removed: list[str]
    loss_initial: float
    loss_full: float
    best: float
    loss_final: float
    trials: list[Trial]
    rounds: list[PruneRound]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        """Processors per type left in the pruned console (0 for a type pruned away)."""
        left = self.console.graph.type_counts()
        return {t: left.get(t, 0) for t in self.full_counts}

    @property
    def pruning_ratio(self) -> float:
        """Removed processors over the full console's processors (``rho`` of Lee et al. 2024)."""
        total = sum(self.full_counts.values())
        return (total - sum(self.counts.values())) / total if total else 0.0

    def type_pruning_ratios(self) -> dict[str, float]:
        """``{type: removed share}`` for every processor type of the full console."""
        return {t: 1.0 - self.counts[t] / n for t, n in self.full_counts.items() if n}

    def summary(self) -> dict:
        """JSON-able summary (no history)."""
        return {"pruning_ratio": self.pruning_ratio, "type_pruning_ratios": self.type_pruning_ratios(),
                "full_counts": self.full_counts, "counts": self.counts,
                "loss_initial": self.loss_initial, "loss_full": self.loss_full, "best": self.best,
                "loss_final": self.loss_final, "trials": len(self.trials),
                "accepted_trials": sum(t.accepted for t in self.trials), "seconds": self.seconds}

    def to_dict(self) -> dict:
        """Summary plus the per-trial and per-round history."""
        return {**self.summary(), "removed": self.removed,
                "history": {"trials": [dataclasses.asdict(t) for t in self.trials],
                            "rounds": [dataclasses.asdict(r) for r in self.rounds]}}


def processor_weights(console: MixingConsole) -> Tensor:
    """``(V,)`` dry/wet weight of every node (NaN for inputs, mixes and the output)."""
    graph = console.graph
    weights = torch.full((graph.num_nodes,), float("nan"))
    for t, params in console.params.items():
        nodes = torch.tensor(graph.nodes_of_type(t))
        weights[nodes] = dry_wet_weight(params[DRY_WET].detach()).float().cpu()
    return weights


def audio_fingerprint(stems: Tensor, mix: Tensor) -> str:
    """Content hash of the inputs (a saved state resumes only on the same audio)."""
    return digest([stems.detach().cpu().float().contiguous().numpy().tobytes(),
                   mix.detach().cpu().float().contiguous().numpy().tobytes()], digits=32)


class _Search:
    """The mutable search state; one object per run, (de)serialised by :meth:`state`."""

    def __init__(self, console: MixingConsole, config: PruneConfig) -> None:
        self.console, self.config = console, config
        graph = console.graph
        self.full_names = list(graph.node_names)
        self.full_counts = {t: n for t, n in graph.type_counts().items() if t in PROCESSOR_TYPES}
        self.origin = list(range(graph.num_nodes))  # full-console id of every current node
        self.generator = torch.Generator().manual_seed(config.seed)
        self.round, self.phase = 1, "trials"
        self.pool: dict | None = None
        self.removed: list[str] = []
        self.trials: list[Trial] = []
        self.rounds: list[PruneRound] = []
        self.round_started: float | None = None
        self.loss_initial = self.loss_full = self.best = float("nan")
        self.seconds = 0.0

    # ------------------------------------------------------------------ candidate pools
    def current_ids(self, origin_ids: list[int]) -> list[int]:
        where = {o: v for v, o in enumerate(self.origin)}
        return [where[o] for o in origin_ids]

    def new_pool(self, method: str) -> dict:
        graph = self.console.graph
        processors = [v for v, t in enumerate(graph.node_types) if t in PROCESSOR_TYPES]
        if method == BRUTE_FORCE:
            order = torch.randperm(len(processors), generator=self.generator).tolist()
            return {"method": method, "queue": [self.origin[processors[i]] for i in order]}
        by_type = {t: [self.origin[v] for v in processors if graph.node_types[v] == t]
                   for t in PROCESSOR_TYPES if t in graph.node_types}
        return {"method": method, "types": list(by_type), "left": by_type,
                "count": {t: len(ids) for t, ids in by_type.items()},
                "ratio": {t: self.config.dry_wet_fraction for t in by_type}}

    def next_candidates(self) -> tuple[str, list[int]] | None:
        """The next trial's ``(type, full-console ids)``, or ``None`` when the round's pool is empty."""
        pool = self.pool
        if pool["method"] == BRUTE_FORCE:
            if not pool["queue"]:
                return None
            v = pool["queue"][0]
            return self.console.graph.node_types[self.current_ids([v])[0]], [v]
        pool["types"] = [t for t in pool["types"] if pool["left"][t]]
        if not pool["types"]:
            return None
        t = pool["types"][int(torch.randint(len(pool["types"]), (1,), generator=self.generator))]
        left = pool["left"][t]
        weights = processor_weights(self.console)[self.current_ids(left)]
        k = min(len(left), max(1, math.floor(pool["count"][t] * pool["ratio"][t])))
        order = sorted(range(len(left)), key=lambda i: (float(weights[i]), left[i]))
        return t, [left[i] for i in order[:k]]

    def update_pool(self, node_type: str, candidates: list[int], accepted: bool) -> None:
        pool = self.pool
        if pool["method"] == BRUTE_FORCE:
            pool["queue"].pop(0)
            return
        if accepted:
            pool["left"][node_type] = [v for v in pool["left"][node_type] if v not in candidates]
        elif len(candidates) > 1:
            pool["ratio"][node_type] /= 2.0
        else:
            pool["types"].remove(node_type)

    def remove(self, origin_ids: list[int]) -> None:
        ids = self.current_ids(origin_ids)
        self.console = self.console.pruned(ids)
        gone = set(ids)
        self.origin = [o for v, o in enumerate(self.origin) if v not in gone]
        self.removed += [self.full_names[o] for o in origin_ids]

    # ------------------------------------------------------------------ state
    def state(self, fingerprint: dict) -> dict:
        graph = self.console.graph
        return {
            "format": STATE_FORMAT, "fingerprint": fingerprint,
            "graph": {"node_types": graph.node_types, "edge_index": graph.edge_index,
                      "node_names": graph.node_names, "mask": graph.mask},
            "params": {t: {k: v.detach().cpu().clone() for k, v in p.items()}
                       for t, p in self.console.parameter_dict().items()},
            "origin": self.origin, "full_names": self.full_names, "full_counts": self.full_counts,
            "generator": self.generator.get_state(), "round": self.round, "phase": self.phase,
            "pool": json.dumps(self.pool), "removed": self.removed,
            "trials": json.dumps([dataclasses.asdict(t) for t in self.trials]),
            "rounds": json.dumps([dataclasses.asdict(r) for r in self.rounds]),
            "losses": [self.loss_initial, self.loss_full, self.best], "seconds": self.seconds,
        }

    def restore(self, state: dict) -> None:
        g = state["graph"]
        graph = MixingGraph(g["node_types"], g["edge_index"], g["node_names"], g["mask"])
        device = next(iter(self.console.parameters()), torch.empty(0)).device
        self.console = MixingConsole(graph, dict(self.console.processors), state["params"],
                                     self.console.schedule).to(device)
        self.origin, self.full_names = list(state["origin"]), list(state["full_names"])
        self.full_counts = dict(state["full_counts"])
        self.generator.set_state(state["generator"])
        self.round, self.phase = int(state["round"]), state["phase"]
        self.pool = json.loads(state["pool"])
        self.removed = list(state["removed"])
        self.trials = [Trial(**t) for t in json.loads(state["trials"])]
        self.rounds = [PruneRound(**{**r, "sparsity_weight": tuple(r["sparsity_weight"])})
                       for r in json.loads(state["rounds"])]
        self.loss_initial, self.loss_full, self.best = state["losses"]
        self.seconds = float(state["seconds"])


def _save(search: _Search, path: Path | None, fingerprint: dict, started: float) -> None:
    if path is None:
        return
    state = search.state(fingerprint)
    state["seconds"] = search.seconds + time.perf_counter() - started
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load(path: Path, fingerprint: dict) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise PruneStateError(f"cannot read the pruning state {path} ({e}); delete it to start "
                              "the search again") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise PruneStateError(f"{path} is not a mixrep pruning state; delete it or choose another "
                              "output folder")
    if state["fingerprint"] != fingerprint:
        differ = [what for k, what in _FINGERPRINT_PARTS.items()
                  if state["fingerprint"].get(k) != fingerprint.get(k)]
        raise PruneStateError(f"the pruning state {path} was made by another run: {' and '.join(differ)} "
                              "differ; resume with the same inputs and settings, delete the state, or "
                              "choose another output folder")
    return state


def prune_console(console: MixingConsole, stems: Tensor, mix: Tensor, config: PruneConfig | None = None,
          state_path: str | os.PathLike | None = None, loss_fn: MixLoss | None = None,
          start_removed: Sequence[int] = ()) -> PruneResult:
    """Fit ``console`` to ``mix`` and prune it (Lee et al. 2024, algorithm 1 with algorithm 3's sampling).

    Args:
        console: the full (unfitted) console; it is fitted in place (without ``start_removed``), and
            the result holds a new, smaller console.
        stems: ``(tracks, 2, samples)`` on the console's device.
        mix: ``(2, samples)`` target.
        config: settings (default: Lee et al.'s).
        state_path: where the resumable state lives; an existing state made by the same inputs and
            settings is resumed, one made by another run raises.
        loss_fn: the audio loss (default :class:`~mixrep.console.loss.MixLoss`).
        start_removed: node ids of ``console`` to leave out before the full fit (a predicted sparse
            graph, :func:`~mixrep.graphs.predictor.predict_console_graph`): the search then
            fits and prunes that smaller graph, and reports its pruning ratio against ``console``.

    Raises:
        ValueError: stems and mix of different lengths, non-finite audio (from :func:`fit`).
        PruneStateError: an unreadable state, or one made by another run.
        NonFiniteFitError: a fit met a non-finite loss (nothing past the last state is kept).
    """
    config = config or PruneConfig()
    if mix.shape != (2, stems.shape[-1]):
        raise ValueError(f"mix {tuple(mix.shape)} does not match stems {tuple(stems.shape)}: "
                         "expected (2, samples) with the stems' length")
    loss_fn = loss_fn or MixLoss(console.sample_rate).to(stems.device)
    path = Path(state_path) if state_path is not None else None
    graph = console.graph
    start = sorted({int(v) for v in start_removed})
    if any(not 0 <= v < graph.num_nodes or graph.node_types[v] not in PROCESSOR_TYPES for v in start):
        raise ValueError(f"start_removed must name processor nodes of the console, got {start}")
    fingerprint = {
        "audio": audio_fingerprint(stems, mix),
        "settings": digest(json.dumps({**config.fingerprint(), **({"start_removed": start} if start else {})},
                                      sort_keys=True), digits=32),
        "console": digest(json.dumps([graph.node_types, graph.node_names, graph.edge_index.tolist(),
                                      console.sample_rate]), digits=32),
    }
    search = _Search(console, config)
    started = time.perf_counter()
    state = _load(path, fingerprint) if path is not None else None
    if state is not None:
        search.restore(state)
        log.info("resuming the pruning search from %s: round %d (%s), %d processors left", path,
                 search.round, search.phase, search.console.graph.num_processors())
    else:
        if start:
            search.remove(start)
        search.loss_initial = evaluate(search.console, stems, mix, loss_fn)
        fit(search.console, stems, mix, dataclasses.replace(config.fit, progress=config.progress), loss_fn)
        search.loss_full = search.best = evaluate(search.console, stems, mix, loss_fn)
        log.info("full console: audio loss %.4f -> %.4f", search.loss_initial, search.loss_full)
        _save(search, path, fingerprint, started)
    while search.round <= config.rounds and search.console.graph.num_processors():
        _run_round(search, stems, mix, loss_fn, path, fingerprint, started)
    loss_final = (search.rounds[-1].loss if search.rounds
                  else evaluate(search.console, stems, mix, loss_fn))
    return PruneResult(search.console, search.full_counts, search.removed, search.loss_initial,
                       search.loss_full, search.best, loss_final, search.trials, search.rounds,
                       search.seconds + time.perf_counter() - started)


def _run_round(search: _Search, stems: Tensor, mix: Tensor, loss_fn: MixLoss, path: Path | None,
               fingerprint: dict, started: float) -> None:
    config, number = search.config, search.round
    method = config.round_method(number)
    if search.phase == "trials":
        if search.pool is None:
            search.pool = search.new_pool(method)
            search.round_started = time.perf_counter()
        while (picked := search.next_candidates()) is not None:
            node_type, candidates = picked
            trial_console = search.console.pruned(search.current_ids(candidates))
            loss = evaluate(trial_console, stems, mix, loss_fn)
            threshold = search.best + config.tolerance
            accepted = loss <= threshold
            if accepted:
                search.remove(candidates)
                search.best = min(search.best, loss)
            search.update_pool(node_type, candidates, accepted)
            search.trials.append(Trial(number, method, node_type,
                                       [search.full_names[o] for o in candidates], loss, threshold,
                                       accepted, search.console.graph.num_processors()))
            if accepted:
                _save(search, path, fingerprint, started)
        search.phase = "finetune"
        _save(search, path, fingerprint, started)
    round_started = search.round_started or time.perf_counter()
    first_step = (number - 1) * config.finetune_steps
    alpha = (config.sparsity_at(first_step), config.sparsity_at(first_step + max(config.finetune_steps - 1, 0)))
    finetune_seconds = 0.0
    if config.finetune_steps and search.console.graph.num_processors():
        finetune = dataclasses.replace(config.fit, steps=config.finetune_steps, sparsity_weight=alpha,
                                       seed=config.fit.seed + 1000 * number, progress=config.progress)
        finetune_seconds = fit(search.console, stems, mix, finetune, loss_fn).seconds
    round_trials = [t for t in search.trials if t.round == number]
    weights = processor_weights(search.console)
    loss = evaluate(search.console, stems, mix, loss_fn)
    search.best = min(search.best, loss)
    search.rounds.append(PruneRound(
        number, method, len(round_trials), sum(t.accepted for t in round_trials),
        sum(len(t.candidates) for t in round_trials if t.accepted),
        search.console.graph.num_processors(), loss, alpha,
        float(weights[~weights.isnan()].mean()) if bool((~weights.isnan()).any()) else 0.0,
        time.perf_counter() - round_started, finetune_seconds))
    log.info("round %d (%s): %d/%d trials accepted, %d processors left, loss %.4f (best %.4f)",
             number, method, search.rounds[-1].accepted, len(round_trials),
             search.rounds[-1].processors, search.rounds[-1].loss, search.best)
    search.round, search.phase, search.pool, search.round_started = number + 1, "trials", None, None
    _save(search, path, fingerprint, started)
