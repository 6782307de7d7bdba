"""Is a processor audible? The change each node makes to its own input, in dB.

A processor drawn into a graph may still do next to nothing to the signal it gets: a gate whose
threshold sits below the track's quiet passages, an imager on a mono track, a compressor whose
threshold the track never crosses. Counting such a processor as *present* asks a graph-prediction
head for something no audio shows. :func:`processor_change_db` measures what every node does: how
much of the loudness pattern of its input (mel bands x frames, mid and side channels, so a width
change counts by how loud the side is) its output changes, expressed as a level change in dB.
:func:`audible_mask` keeps the processors whose change reaches a threshold.

The measure is local (a processor against its own input), not the change of the whole mix when
the processor is removed: one render with ``keep_nodes=True`` gives it for every node at once,
where the mix-level test would need one render per processor.

Shape:
    node outputs ``(V, 2, samples)``; per-node results ``(V,)``.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor

from mixrep.console.console import MixingConsole
from mixrep.console.graph import PROCESSOR_TYPES, MixingGraph

N_FFT = 1024
N_MELS = 32
ENERGY_FLOOR = 1e-10
LOUDNESS_EXPONENT = 0.3
"""Loudness grows like energy ** 0.3 (Stevens' power law)."""


def mid_side(x: Tensor) -> Tensor:
    """``(..., 2, samples)`` left/right -> ``(..., 2, samples)`` mid ``(L + R) / 2`` and side ``(L - R) / 2``."""
    left, right = x[..., 0, :], x[..., 1, :]
    return torch.stack([(left + right) / 2, (left - right) / 2], -2)


def spectral_change_db(before: Tensor, after: Tensor, sample_rate: int) -> Tensor:
    """How much ``after`` differs from ``before`` in loudness pattern, as a level change in dB.

    Per (mid/side channel, mel band, frame) cell, loudness ``L = energy ** 0.3`` (Stevens' power
    law). The share ``f = sum |L_after - L_before| / sum max(L_before, L_after)`` of the loudness
    that changed is reported as the uniform level change that changes that share:
    ``-10 / 0.3 * log10(1 - f)`` dB. So a plain gain of ``g`` dB gives exactly ``|g|``; an EQ
    counts by the loudness of the bands it touches; a reverb tail into silence by its loudness; a
    side channel 40 dB below the mid by little (a width change on a near-mono track).

    Shape:
        ``(N, 2, samples)`` twice -> ``(N,)`` dB (0 where both are silent).
    """
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=N_FFT, hop_length=N_FFT // 2, n_mels=N_MELS,
                                               power=2.0).to(before.device)
    loud_in = (mel(mid_side(before)) + ENERGY_FLOOR) ** LOUDNESS_EXPONENT
    loud_out = (mel(mid_side(after)) + ENERGY_FLOOR) ** LOUDNESS_EXPONENT
    changed = (loud_out - loud_in).abs().sum((-1, -2, -3))
    share = changed / torch.maximum(loud_in, loud_out).sum((-1, -2, -3))
    return -10.0 / LOUDNESS_EXPONENT * torch.log10((1.0 - share).clamp(min=1e-6))


def processor_change_db(graph: MixingGraph, node_outputs: Tensor, sample_rate: int) -> Tensor:
    """``(V,)``: what each processor node does to its input (the sum of its predecessors' outputs),
    by :func:`spectral_change_db`; 0 for inputs, mixes, outputs and bypassed processors.

    Args:
        node_outputs: ``(V, 2, samples)`` from a render with ``keep_nodes=True`` of this graph.
    """
    preds = graph.predecessors()
    nodes = [v for v, t in enumerate(graph.node_types) if t in PROCESSOR_TYPES and graph.mask[v] > 0]
    out = torch.zeros(graph.num_nodes)
    if not nodes:
        return out
    inputs = torch.stack([node_outputs[preds[v]].sum(0) for v in nodes])
    out[nodes] = spectral_change_db(inputs, node_outputs[nodes], sample_rate).cpu()
    return out


def audible_mask(graph: MixingGraph, node_outputs: Tensor, sample_rate: int, threshold_db: float,
                 types: tuple[str, ...] = PROCESSOR_TYPES) -> Tensor:
    """``graph.mask`` with the processors of ``types`` whose change is below ``threshold_db`` set to 0.

    Shape:
        ``node_outputs`` ``(V, 2, samples)`` -> ``(V,)``.
    """
    change = processor_change_db(graph, node_outputs, sample_rate)
    judged = torch.tensor([t in types for t in graph.node_types])
    return torch.where(judged & (change < threshold_db), torch.zeros_like(change), graph.mask.float().cpu())


def audible_console_mask(console: MixingConsole, stems: Tensor, threshold_db: float,
                         types: tuple[str, ...] = PROCESSOR_TYPES) -> Tensor:
    """:func:`audible_mask` of ``console`` playing ``stems``: one render of every node, no gradients.

    Shape:
        ``stems`` ``(tracks, 2, samples)`` -> ``(V,)``.
    """
    with torch.no_grad():
        nodes = console.render_graph(stems, keep_nodes=True).node_outputs
    return audible_mask(console.graph, nodes, console.sample_rate, threshold_db, types)
