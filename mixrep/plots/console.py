"""Figures of the console and its searches: a processing graph, a fit's spectrogram error, a pruning run.

Shape:
    audio ``(2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from mixrep.console.graph import INPUT, MIX, NODE_TYPES, OUTPUT, PROCESSOR_TYPES, MixingGraph
from mixrep.console.loss import log_spectrogram_db
from mixrep.console.processors import PROCESSOR_CLASSES
from mixrep.files import save_figure
from mixrep.graphs.prune import PruneResult


_LETTERS = {INPUT: "i", MIX: "m", OUTPUT: "o"} | {
    name: cls.chain_letter for name, cls in PROCESSOR_CLASSES.items()
}


def draw_graph(graph: MixingGraph, path: str | os.PathLike, title: str = "") -> Path:
    """Draw ``graph`` left to right by depth (bypassed processors hollow) to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = graph.predecessors()
    depth = [0] * graph.num_nodes
    for v in graph.topological_order():
        depth[v] = max((depth[p] + 1 for p in preds[v]), default=0)
    rows: dict[int, int] = {}
    pos = {}
    for v in range(graph.num_nodes):
        pos[v] = (depth[v], rows.get(depth[v], 0))
        rows[depth[v]] = rows.get(depth[v], 0) + 1
    height = max(rows.values())
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * (max(depth) + 1)), max(2.5, 0.35 * height)))
    cmap = plt.get_cmap("tab10")
    for src, dst in graph.edges():
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.plot([x0, x1], [-y0, -y1], color="0.6", lw=0.6, zorder=1)
    for v, (x, y) in pos.items():
        t = graph.node_types[v]
        active = t not in PROCESSOR_TYPES or graph.mask[v] > 0
        color = cmap(NODE_TYPES.index(t) % 10)
        ax.scatter([x], [-y], s=180, zorder=2, facecolor=color if active else "white",
                   edgecolor=color)
        ax.text(x, -y, _LETTERS[t], ha="center", va="center", fontsize=7, zorder=3)
    ax.set_axis_off()
    ax.set_title(title or f"{graph.num_processors()} processors, {graph.num_nodes} nodes")
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_spectrogram_error(estimate: Tensor, target: Tensor, path: str | os.PathLike,
                           sample_rate: int, title: str = "") -> Path:
    """Mid/side log spectrograms of target and estimate and their difference (Lee et al. 2024, figure 7).

    Shape:
        estimate, target: ``(2, samples)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name, sign in (("mid", 1.0), ("side", -1.0)):
        t = log_spectrogram_db((target[0] + sign * target[1]).float().cpu() / 2)
        e = log_spectrogram_db((estimate[0] + sign * estimate[1]).float().cpu() / 2)
        rows.append((name, t, e))
    seconds = target.shape[-1] / sample_rate
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True, sharey=True)
    extent = (0.0, seconds, 0.0, sample_rate / 2000.0)
    for r, (name, t, e) in enumerate(rows):
        vmax = float(t.max())
        for c, (label, img, kw) in enumerate((
            ("target", t, dict(vmin=vmax - 80, vmax=vmax, cmap="magma")),
            ("estimate", e, dict(vmin=vmax - 80, vmax=vmax, cmap="magma")),
            ("estimate - target (dB)", (e - t).clamp(-20, 20), dict(vmin=-20, vmax=20, cmap="coolwarm")),
        )):
            im = axes[r, c].imshow(img.numpy(), origin="lower", aspect="auto", extent=extent, **kw)
            axes[r, c].set_title(f"{name}: {label}")
            fig.colorbar(im, ax=axes[r, c])
        axes[r, 0].set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_pruning(result: PruneResult, path: str | os.PathLike, title: str = "") -> Path:
    """Loss of every trial against its threshold, and the pruning ratio, over the trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = sum(result.full_counts.values())
    x = list(range(1, len(result.trials) + 1))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    accepted = [(i, t.loss) for i, t in zip(x, result.trials) if t.accepted]
    rejected = [(i, t.loss) for i, t in zip(x, result.trials) if not t.accepted]
    if rejected:
        top.scatter(*zip(*rejected), s=10, marker="x", color="tab:red", label="rejected trial")
    if accepted:
        top.scatter(*zip(*accepted), s=12, color="tab:green", label="accepted trial")
    top.step(x, [t.threshold for t in result.trials], where="mid", color="0.3", lw=1,
             label="best + tolerance")
    top.axhline(result.loss_full, color="tab:blue", ls="--", lw=1, label="full console")
    shown = ([t.loss for t in result.trials if t.accepted] + [t.threshold for t in result.trials]
             + [r.loss for r in result.rounds] + [result.loss_full])
    top.set_ylim(0.9 * min(shown), 1.5 * max(shown))  # rejected trials far above are clipped
    top.set_ylabel("audio loss")
    bottom.plot(x, [1.0 - t.processors / total for t in result.trials], color="tab:purple")
    bottom.set_ylabel("pruning ratio")
    bottom.set_xlabel("trial")
    bottom.set_ylim(0, 1)
    ends, last = [], 0  # the last trial of every round
    for r in result.rounds:
        last = max((i for i, t in zip(x, result.trials) if t.round == r.round), default=last)
        ends.append(last)
    for ax in (top, bottom):
        for end in ends:
            ax.axvline(end + 0.5, color="0.85", lw=0.8, zorder=0)
    finished = [(end + 0.5, r) for end, r in zip(ends, result.rounds)]
    if finished:
        top.scatter([e for e, _ in finished], [r.loss for _, r in finished], marker="D", s=18,
                    color="tab:blue", label="after fine-tuning")
        weight = bottom.twinx()
        weight.plot([e for e, _ in finished], [r.mean_dry_wet for _, r in finished], "o--",
                    color="tab:orange", ms=3, lw=1)
        weight.set_ylabel("mean dry/wet weight", color="tab:orange")
        weight.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    fig.suptitle(title or f"pruning ratio {result.pruning_ratio:.2f}, loss {result.loss_full:.3f} -> {result.loss_final:.3f}")
    return save_figure(fig, path, dpi=100, bbox_inches="tight")
