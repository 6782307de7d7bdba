"""How well a fitted console reproduces a known one: every track's level and pan in the mix.

Processor parameters are not identifiable one by one (an EQ's overall level trades against the
fader, a subgroup fader against all its tracks, a track compressor against the group's), so the
comparison is made where it is identifiable: every track's *contribution* to the mix.

Every processor of a console is linear time-invariant (EQ, imager, fader, delay, reverb) or applies
a time-varying gain (compressor, gate), so with the subgroup dynamics' gains frozen at the values
the full mix drives them to, the mix is exactly the sum of the tracks' contributions
(:func:`track_contributions`). From a contribution:

* ``gain_db``: its energy over the dry track's, both averaged over the two channels
  (10 log10): the track's effective gain in the mix, effects included;
* ``pan``: ``(4 / pi) atan2(rms_right, rms_left) - 1``, the inverse of the constant-power law.

(Rendering a track *alone* instead would run the subgroup compressors on that track only, which
is not how the track sounds in the mix, and would differ between two consoles that split the same
compression between track and subgroup differently.)

Shape:
    Stems ``(tracks, 2, samples)``; contributions ``(tracks, 2, samples)``; levels ``(tracks,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mixrep.console.console import MixingConsole
from mixrep.console.graph import INPUT, MIX, OUTPUT, PROCESSOR_TYPES, MixingGraph
from mixrep.console.prior import after_mix
from mixrep.console.processors import DRY_WET, dry_wet_weight
from mixrep.errors import DatasetError

SILENCE = 1e-12
"""Mean-square floor below which a track counts as silent."""


@torch.no_grad()
def track_contributions(console: MixingConsole, stems: Tensor) -> Tensor:
    """Each track's part of the mix: ``(tracks, 2, samples)``, summing to the rendered mix.

    Track-level processors see only their own track (as in the mix); subgroup-level compressors
    and gates apply the gain envelope the full mix gives them.
    """
    graph = console.graph
    processors = dict(console.processors)
    params = console.parameter_dict()
    preds = graph.predecessors()
    ranks = graph.type_rank()
    order = graph.topological_order()
    grouped = after_mix(graph)
    outputs = console.render_graph(stems, keep_nodes=True).node_outputs
    mask = graph.mask.to(stems)

    def node_params(v: int) -> tuple[Tensor, dict[str, Tensor]]:
        p = params[graph.node_types[v]]
        r = ranks[v]
        weight = dry_wet_weight(p[DRY_WET][r : r + 1]) * mask[v : v + 1]
        return weight, {k: t[r : r + 1] for k, t in p.items() if k != DRY_WET}

    frozen: dict[int, Tensor] = {}
    for v in order:
        processor = processors.get(graph.node_types[v])
        if grouped[v] and hasattr(processor, "gain_envelope"):
            weight, p = node_params(v)
            u = sum(outputs[q] for q in preds[v])[None]
            frozen[v] = processor.gain_envelope(u, weight, **p)
    inputs = graph.nodes_of_type(INPUT)
    contributions = []
    for k, source in enumerate(inputs):
        signal: dict[int, Tensor] = {source: stems[k][None]}
        for v in order:
            t = graph.node_types[v]
            if t == INPUT:
                continue
            parts = [signal[q] for q in preds[v] if q in signal]
            if not parts:  # silent for this track: zero in, zero out for every processor
                continue
            x = sum(parts)
            if t in (MIX, OUTPUT):
                signal[v] = x
            elif v in frozen:
                signal[v] = x * frozen[v]
            else:
                weight, p = node_params(v)
                signal[v] = processors[t](x, weight=weight, **p)
        out = graph.nodes_of_type(OUTPUT)[0]
        contributions.append(signal.get(out, torch.zeros_like(stems[k][None]))[0])
    return torch.stack(contributions)


@dataclass
class TrackLevels:
    """Per-track effective gain (dB) and pan in the mix, ``(tracks,)`` each."""

    gain_db: Tensor
    pan: Tensor


def track_levels(console: MixingConsole, stems: Tensor) -> TrackLevels:
    """Level and pan of every track's contribution to ``console``'s mix."""
    contributions = track_contributions(console, stems).double()
    gains, pans = [], []
    for k in range(stems.shape[0]):
        energy = (contributions[k] ** 2).mean(-1)  # (2,)
        dry = float((stems[k].double() ** 2).mean())
        gains.append(10.0 * math.log10(max(float(energy.mean()), SILENCE) / max(dry, SILENCE)))
        rms = torch.sqrt(energy)
        pans.append(float(torch.atan2(rms[1], rms[0])) * 4.0 / math.pi - 1.0)
    return TrackLevels(torch.tensor(gains), torch.tensor(pans))


@dataclass
class LevelErrors:
    """Absolute per-track errors of a fitted console against the true one."""

    gain_db: Tensor
    pan: Tensor

    def summary(self) -> dict[str, float]:
        return {"gain_error_db_mean": float(self.gain_db.mean()),
                "gain_error_db_max": float(self.gain_db.max()),
                "pan_error_mean": float(self.pan.mean()), "pan_error_max": float(self.pan.max())}


def level_errors(fitted: MixingConsole, true: MixingConsole, stems: Tensor) -> LevelErrors:
    """``|fitted - true|`` of :func:`track_levels` per track."""
    a, b = track_levels(fitted, stems), track_levels(true, stems)
    return LevelErrors((a.gain_db - b.gain_db).abs(), (a.pan - b.pan).abs())


def compare_with_truth(console: MixingConsole, path: Path, names: list[str], stems: torch.Tensor) -> dict:
    """Per-track gain and pan errors of ``console`` against the console stored at ``path``."""
    try:
        truth = MixingConsole.from_json(path).to(stems.device)
    except (ValueError, KeyError) as e:
        raise DatasetError(f"cannot load the true parameters {path}: {e}") from e
    if truth.sample_rate != console.sample_rate or sorted(truth.track_names) != sorted(names):
        raise DatasetError(f"{path} describes tracks {truth.track_names} at {truth.sample_rate} Hz; the "
                           f"fit has {names} at {console.sample_rate} Hz (pass --sample-rate "
                           f"{truth.sample_rate})")
    fitted = track_levels(console, stems)
    true = track_levels(truth, stems[[names.index(n) for n in truth.track_names]])
    true_gain = dict(zip(truth.track_names, true.gain_db.tolist()))
    true_pan = dict(zip(truth.track_names, true.pan.tolist()))
    return {"gain_error_db": {n: abs(g - true_gain[n]) for n, g in zip(names, fitted.gain_db.tolist())},
            "pan_error": {n: abs(p - true_pan[n]) for n, p in zip(names, fitted.pan.tolist())}}


@dataclass(frozen=True)
class Recovery:
    """How well a pruned graph recovered the processors of one type that a known graph used.

    Attributes:
        true: processors of the type the known graph used (active).
        kept: processors of the type the pruned graph kept.
        hits: processors in both.
    """

    true: int
    kept: int
    hits: int

    @property
    def precision(self) -> float:
        """Share of the kept processors that were used (NaN when none was kept)."""
        return self.hits / self.kept if self.kept else float("nan")

    @property
    def recall(self) -> float:
        """Share of the used processors that were kept (NaN when none was used)."""
        return self.hits / self.true if self.true else float("nan")


def graph_recovery(pruned: MixingGraph, truth: MixingGraph) -> dict[str, Recovery]:
    """Per processor type, the pruned graph's kept processors against the truth's active ones.

    Processors are matched by node name (both graphs built for the same tracks and groups, e.g.
    a ``make-case`` case's ``true_parameters.json``).

    Raises:
        ValueError: the pruned graph holds processors the truth does not name.
    """
    true_types = {n: t for n, t in zip(truth.node_names, truth.node_types) if t in PROCESSOR_TYPES}
    active = {n for n, t, m in zip(truth.node_names, truth.node_types, truth.mask.tolist())
              if t in PROCESSOR_TYPES and m > 0}
    kept = {n for n, t in zip(pruned.node_names, pruned.node_types) if t in PROCESSOR_TYPES}
    unknown = sorted(kept - set(true_types))
    if unknown:
        raise ValueError(f"the known graph has no processors named {unknown[:5]}: it describes other "
                         "tracks, groups or chains than the pruned console")
    out = {}
    for t in PROCESSOR_TYPES:
        names = {n for n, nt in true_types.items() if nt == t}
        if names:
            out[t] = Recovery(len(names & active), len(names & kept), len(names & active & kept))
    return out
