"""Balance matching: set each stem bus's fader so the stems sit in the mix as the reference's do.

The stem balance (each stem's level relative to the mix) is the most audible part of a mix's style
and the part a reference shows directly: its stems are measured, not inferred. The head predicts
it only as well as the embedding carries it, so after the prediction :func:`match_balance` renders
the console's stem buses on a stretch of the tracks, compares every stem's level relative to the
mix with the reference's, and moves that bus's fader by the difference. The bus fader (``g`` of the
bus chain) sits after the bus dynamics and before the echo effects, so the stem's level moves by
exactly the correction; the mix level moves with it, which a second pass settles.

Levels are energies over both channels in dB (the measure the audio loss weighs); stems that are
silent in the reference (below ``silent_db`` under its mix) or absent from the tracks are left as
they are.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from mixrep.console import MixingConsole
from mixrep.console import functional as Fn
from mixrep.console.batch import strip_of_nodes
from mixrep.console.strips import group_outputs
from mixrep.constants import STEMS
from mixrep.data.transfer import stem_groups

log = logging.getLogger(__name__)


def console_stems(console: MixingConsole, tracks: Tensor, stems: list[str]) -> Tensor:
    """The console's stem buses ``(4, 2, samples)`` (STEMS order, zeros for absent classes), differentiable.

    Args:
        tracks: ``(K, 2, samples)`` in the console's track order; stems: the stem class of each.
    """
    nodes = console.render_graph(tracks, keep_nodes=True).node_outputs
    present = group_outputs(console.graph, nodes)
    out = tracks.new_zeros((len(STEMS), 2, tracks.shape[-1]))
    index = torch.tensor([STEMS.index(s) for s in stem_groups(console.track_names, stems)], device=tracks.device)
    return out.index_copy(0, index, present)


def level_db(audio: Tensor) -> Tensor:
    """Energy level in dB of ``(..., channels, samples)`` -> ``(...)`` (floor -200 dB)."""
    return 10.0 * torch.log10(audio.pow(2).mean((-2, -1)) + 1e-20)


@torch.no_grad()
def match_balance(console: MixingConsole, tracks: Tensor, stems: list[str], reference_stems: Tensor,
                  seconds: float = 10.0, passes: int = 2, silent_db: float = -50.0) -> dict[str, float]:
    """Move every stem bus's fader of ``console`` in place so its stems' levels relative to the mix
    match ``reference_stems``'; returns the total correction per stem class in dB.

    Args:
        tracks: ``(K, 2, samples)`` level-aligned, in the console's track order; stems: class per track.
        reference_stems: ``(4, 2, samples)`` in STEMS order.
        seconds: length of the stretch rendered to measure (the middle of the tracks).
        passes: measure-and-correct rounds.
        silent_db: a reference stem this far under the reference mix is taken as absent.

    Raises:
        ValueError: a console without a fader on some stem bus.
    """
    reference_stems = reference_stems.to(tracks.device).float()
    target_db = level_db(reference_stems) - level_db(reference_stems.sum(0))
    classes = list(stem_groups(console.track_names, stems))  # the console's buses, in mix-node order
    faders: dict[str, int] = {}
    fader_nodes = console.graph.nodes_of_type("gain_pan")
    for v, owner in enumerate(strip_of_nodes(console.graph)):
        if owner is not None and owner[0] == "group" and console.graph.node_types[v] == "gain_pan":
            faders[classes[owner[1]]] = fader_nodes.index(v)
    missing = [c for c in classes if c not in faders]
    if missing:
        raise ValueError(f"the console has no fader on the {', '.join(missing)} bus; balance matching needs one "
                         f"(a bus chain with 'g')")
    matched = [c for c in classes if float(target_db[STEMS.index(c)]) > silent_db]
    skipped = sorted(set(classes) - set(matched))
    if skipped:
        log.info("balance matching leaves the %s bus as predicted: silent in the reference", ", ".join(skipped))
    length = min(tracks.shape[-1], int(seconds * console.sample_rate))
    start = (tracks.shape[-1] - length) // 2
    stretch = tracks[..., start: start + length]
    log_gain = console.params["gain_pan"]["log_gain"]
    low, high = (g * Fn.LOG10_OVER_20 for g in Fn.GAIN_DB_RANGE)
    total = dict.fromkeys(matched, 0.0)
    for _ in range(passes if len(matched) > 1 else 0):  # one stem alone has nothing to balance against
        rendered = console_stems(console, stretch, stems)
        current_db = level_db(rendered) - level_db(rendered.sum(0))
        for c in matched:
            s = STEMS.index(c)
            if float(level_db(rendered[s])) < -150.0:
                continue  # the bus renders silence (silent tracks): no fader move helps
            delta_db = float(target_db[s] - current_db[s])
            row = faders[c]
            before = log_gain[row].clone()
            log_gain[row] = (log_gain[row] + delta_db * Fn.LOG10_OVER_20).clamp(low, high)
            total[c] += float((log_gain[row] - before).mean()) / Fn.LOG10_OVER_20
    return total
