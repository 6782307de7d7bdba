"""A console's settings in the units a mixing engineer reads, per track and per bus.

Per strip: fader ``gain_db`` and ``pan`` (-1 left .. 1 right), the EQ curve in dB at named
frequencies, compressor and gate ``threshold_db`` / ``ratio`` / ``attack_ms`` (the smoother's time
constant) / ``knee_db``, stereo ``width``, the strongest delay tap (``delay_ms``, ``level_db``),
the reverb ``decay_seconds`` (median RT60 over frequency) and ``level_db`` (initial level), and the
dry/wet mix of every processor.
"""

from __future__ import annotations

import numpy as np
import torch

from mixrep.console import MixingConsole
from mixrep.console.batch import strip_of_nodes
from mixrep.console.processors import DRY_WET, dry_wet_weight

EQ_REPORT_HZ: tuple[float, ...] = (60.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0, 10000.0)
"""Frequencies at which the EQ curve is reported (those above Nyquist are left out)."""


def _r(x, digits: int = 2) -> float:
    return round(float(x), digits)


def _node_report(node_type: str, physical: dict[str, torch.Tensor], processor) -> dict:
    if node_type == "gain_pan":
        return {"gain_db": _r(physical["gain_db"]), "pan": _r(physical["pan"], 3)}
    if node_type == "eq":
        freqs = processor.frequencies_hz().numpy()
        curve = physical["gain_db"].numpy()
        return {"curve_db": {f"{int(f)}_hz": _r(np.interp(f, freqs, curve)) for f in EQ_REPORT_HZ
                             if f < processor.sample_rate / 2}}
    if node_type in ("compressor", "noisegate"):
        return {"threshold_db": _r(physical["threshold_db"].reshape(-1)[0]), "ratio": _r(physical["ratio"].reshape(-1)[0]),
                "attack_ms": _r(physical["time_constant_ms"].reshape(-1)[0]), "knee_db": _r(physical["knee_db"].reshape(-1)[0])}
    if node_type == "imager":
        return {"width": _r(physical["width"], 3)}
    if node_type == "delay":
        level = physical["tap_eq_db"].mean(-1)  # (2, taps)
        channel, tap = divmod(int(level.argmax()), level.shape[-1])
        return {"delay_ms": _r(physical["delay_ms"][channel, tap], 1), "level_db": _r(level[channel, tap])}
    if node_type == "reverb":
        return {"decay_seconds": _r(physical["rt60_seconds"].median(), 3),
                "level_db": _r(physical["initial_db"].mean())}
    raise ValueError(f"no report for processor type {node_type!r}")


@torch.no_grad()
def physical_report(console: MixingConsole, group_names: list[str] | None = None) -> dict:
    """``{"tracks": {name: {type: {...}}}, "buses": {group: {type: {...}}}}`` in physical units.

    Every processor entry carries its ``dry_wet`` weight (0 bypassed .. 1 fully wet).
    """
    graph = console.graph
    params = console.parameter_dict()
    processors = dict(console.processors)
    ranks = graph.type_rank()
    physical = {t: processors[t].to_physical(**{k: v.detach().cpu() for k, v in p.items() if k != DRY_WET})
                for t, p in params.items()}
    tracks = console.track_names
    groups = group_names or [graph.node_names[v] for v in graph.nodes_of_type("mix")]
    out: dict[str, dict] = {"tracks": {n: {} for n in tracks}, "buses": {g: {} for g in groups}}
    for v, owner in enumerate(strip_of_nodes(graph)):
        if owner is None:
            continue
        t, r = graph.node_types[v], ranks[v]
        entry = _node_report(t, {k: x[r] for k, x in physical[t].items()}, processors[t])
        entry["dry_wet"] = _r(dry_wet_weight(params[t][DRY_WET][r].detach().cpu()) * graph.mask[v], 3)
        kind, i = owner
        (out["tracks"][tracks[i]] if kind == "track" else out["buses"][groups[i]])[t] = entry
    return out
