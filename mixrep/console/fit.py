"""Fitting a console to a mix (Lee et al. 2024, section 2.3).

Every step renders a random crop of the stems (Lee et al. 2024: 3.8 s, batch 1), compares the part after the
warm-up second with the target mix using :class:`~mixrep.console.loss.MixLoss`, adds
``gain_staging_weight`` (Lee et al. 2024: 1e-3) times the gain-staging loss (and, for pruning, a dry/wet
sparsity term), and takes an AdamW step (Lee et al. 2024: learning rate 0.01), then projects every raw
parameter back into its safe range.

Beyond Lee et al.'s protocol (each measured in the README's convergence table):

* ``learning_rate_scale``: per-type (or per-parameter) learning-rate multipliers;
* ``warmup_steps`` / ``warmup_types``: the first steps train only the given types (gain/pan), so
  the balance is in place before the effects move;
* the console's near-transparent initialisation (:mod:`mixrep.console.processors`).

A non-finite loss or gradient stops the fit with :class:`NonFiniteFitError` before the optimiser
step, so the console keeps the last finite parameters.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mixrep.console.console import MixingConsole
from mixrep.console.graph import PROCESSOR_TYPES
from mixrep.console.loss import MixLoss
from mixrep.console.processors import DRY_WET, dry_wet_weight
from mixrep.errors import MixrepError

log = logging.getLogger(__name__)

DEFAULT_LEARNING_RATE_SCALE: dict[str, float] = {"gain_pan": 3.0, "dry_wet": 3.0}
"""Per-type learning-rate multipliers of :class:`FitConfig`: the faders and every dry/wet weight
move three times faster than the effects' own parameters. Not a measured gain: in the README's
table one rate for all (the paper's protocol) fits as well, within the spread over seeds."""


class NonFiniteFitError(MixrepError):
    """A fit met a non-finite loss or gradient; the console keeps the parameters of the step before.

    Attributes:
        step: 0-based optimisation step.
        quantity: ``"loss"`` or ``"gradient"``.
        node_type: processor type involved (``None`` if no node could be blamed).
        parameter: ``"type.name"`` of the parameter with a non-finite gradient, or the parameters
            of the first node whose output is non-finite.
        nodes: names of the graph nodes involved.
    """

    def __init__(self, step: int, quantity: str, node_type: str | None, parameter: str | None,
                 nodes: list[str]) -> None:
        self.step, self.quantity, self.node_type = step, quantity, node_type
        self.parameter, self.nodes = parameter, nodes
        where = (f" at {parameter} of processor type {node_type!r} (nodes {nodes[:4]}"
                 f"{' ...' if len(nodes) > 4 else ''})" if node_type else "")
        super().__init__(
            f"fit stopped at step {step}: non-finite {quantity}{where}; the console keeps the "
            "parameters of the previous step. Lower the learning rate or check the input audio."
        )


@dataclass
class FitConfig:
    """Optimisation settings; defaults are Lee et al.'s protocol except ``steps`` (Lee et al. 2024: 12k) and
    the measured additions (learning-rate scales, gain warm-up).

    Attributes:
        steps: optimisation steps.
        learning_rate: AdamW base learning rate (Lee et al. 2024: 0.01).
        learning_rate_scale: multipliers by processor type (``"eq"``), parameter
            (``"delay.z_delay"``) or ``"dry_wet"`` (every dry/wet logit); the most specific wins.
        weight_decay: AdamW's decoupled weight decay (torch's default).
        warmup_steps: number of first steps that train only ``warmup_types``.
        warmup_types: processor types trained during the warm-up.
        crop_seconds, warmup_seconds: training crop and the processors' warm-up inside it (Lee et al. 2024:
            3.8 s and 1 s; the loss sees the last 2.8 s).
        gain_staging_weight: ``alpha_g`` of Lee et al. (DAFx 2024), eq. 6.
        sparsity_weight: ``(start, end)`` of the dry/wet L1 weight ``alpha_p`` (Lee et al. 2024, eq. 8),
            ramped linearly over the steps (pruning's fine-tuning uses it).
        seed: crop sampling seed.
        progress: show a progress bar.
    """

    steps: int = 1000
    learning_rate: float = 0.01
    learning_rate_scale: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LEARNING_RATE_SCALE))
    weight_decay: float = 0.01
    warmup_steps: int = 0
    warmup_types: tuple[str, ...] = ("gain_pan",)
    crop_seconds: float = 3.8
    warmup_seconds: float = 1.0
    gain_staging_weight: float = 1e-3
    sparsity_weight: tuple[float, float] = (0.0, 0.0)
    seed: int = 0
    progress: bool = True


@dataclass
class FitResult:
    """What a fit did.

    Attributes:
        losses: audio loss of every step's crop (without regularisation).
        seconds: wall time of the optimisation.
    """

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(len(self.losses), 1)


def _crop_start(length: int, crop: int, generator: torch.Generator) -> int:
    if length <= crop:
        return 0
    return int(torch.randint(0, length - crop + 1, (1,), generator=generator))


def evaluate(console: MixingConsole, stems: Tensor, mix: Tensor, loss_fn: MixLoss | None = None,
             warmup_seconds: float = 0.0) -> float:
    """Audio loss of the console's render of the whole of ``stems`` (after ``warmup_seconds``)."""
    loss_fn = loss_fn or MixLoss(console.sample_rate).to(stems.device)
    warm = int(warmup_seconds * console.sample_rate)
    with torch.no_grad():
        estimate = console.render_long(stems)
        return float(loss_fn(estimate[..., warm:], mix[..., warm:]))


def _scale(config: FitConfig, node_type: str, name: str) -> float:
    scales = config.learning_rate_scale
    key = "dry_wet" if name == DRY_WET else name
    for candidate in (f"{node_type}.{key}", f"{node_type}.{name}", key if key == "dry_wet" else None,
                      node_type):
        if candidate is not None and candidate in scales:
            return float(scales[candidate])
    return 1.0


def make_optimizer(console: MixingConsole, config: FitConfig) -> torch.optim.AdamW:
    """AdamW with one parameter group per raw parameter tensor, at its scaled learning rate."""
    unknown = {k.split(".")[0] for k in config.learning_rate_scale} - set(PROCESSOR_TYPES) - {"dry_wet"}
    if unknown:
        raise ValueError(f"learning_rate_scale names unknown types {sorted(unknown)}; use "
                         f"{list(PROCESSOR_TYPES)} or 'dry_wet'")
    groups = [
        {"params": [p], "lr": config.learning_rate * _scale(config, t, name), "name": f"{t}.{name}"}
        for t, params in console.params.items() for name, p in params.items()
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _first_non_finite_node(console: MixingConsole, stems: Tensor) -> tuple[str | None, list[str]]:
    """Type and name of the first node (topological order) whose output is non-finite."""
    with torch.no_grad():
        outputs = console.render_graph(stems, keep_nodes=True).node_outputs
    graph = console.graph
    for v in graph.topological_order():
        if not torch.isfinite(outputs[v]).all():
            return graph.node_types[v], [graph.node_names[v]]
    return None, []


def _check_gradients(console: MixingConsole, step: int) -> None:
    graph = console.graph
    for t, params in console.params.items():
        names = [graph.node_names[v] for v in graph.nodes_of_type(t)]
        for name, p in params.items():
            if p.grad is None:
                continue
            finite = torch.isfinite(p.grad).reshape(p.shape[0], -1).all(-1)
            if not bool(finite.all()):
                bad = [names[i] for i in torch.nonzero(~finite).flatten().tolist()]
                raise NonFiniteFitError(step, "gradient", t, f"{t}.{name}", bad)


def _set_trainable(console: MixingConsole, types: tuple[str, ...] | None) -> None:
    for t, params in console.params.items():
        for p in params.values():
            p.requires_grad_(types is None or t in types)


def sparsity_loss(console: MixingConsole) -> Tensor:
    """Sum of the dry/wet weights of the active processors (``L_p`` of Lee et al. 2024, eq. 8)."""
    total = None
    mask = console.graph.mask
    for t, params in console.params.items():
        rows = torch.tensor(console.graph.nodes_of_type(t))
        weights = dry_wet_weight(params[DRY_WET]) * mask[rows].to(params[DRY_WET])
        total = weights.sum() if total is None else total + weights.sum()
    return total if total is not None else torch.zeros(())


def fit(console: MixingConsole, stems: Tensor, mix: Tensor, config: FitConfig | None = None,
        loss_fn: MixLoss | None = None) -> FitResult:
    """Optimise ``console``'s parameters in place so that its render of ``stems`` matches ``mix``.

    Args:
        stems: ``(tracks, 2, samples)`` dry tracks, on the device the console lives on.
        mix: ``(2, samples)`` target.

    Raises:
        ValueError: mismatched lengths, non-finite audio, or a crop not longer than the warm-up.
        NonFiniteFitError: a non-finite loss or gradient (the console keeps the last finite
            parameters; nothing non-finite is ever written into it).
    """
    config = config or FitConfig()
    if mix.shape != (2, stems.shape[-1]):
        raise ValueError(f"mix {tuple(mix.shape)} does not match stems {tuple(stems.shape)}: "
                         "expected (2, samples) with the stems' length")
    for what, audio in (("stems", stems), ("mix", mix)):
        if not bool(torch.isfinite(audio).all()):
            raise ValueError(f"the {what} contain NaN or infinite samples")
    sr = console.sample_rate
    crop = int(round(config.crop_seconds * sr))
    warm = int(round(config.warmup_seconds * sr))
    if crop <= warm:
        raise ValueError(f"crop_seconds {config.crop_seconds} must exceed warmup_seconds "
                         f"{config.warmup_seconds}")
    loss_fn = loss_fn or MixLoss(sr).to(stems.device)
    optimizer = make_optimizer(console, config)
    generator = torch.Generator().manual_seed(config.seed)
    result = FitResult()
    sparsity_start, sparsity_end = config.sparsity_weight
    bar = tqdm(range(config.steps), disable=not config.progress, desc="fit", unit="step")
    started = time.perf_counter()
    try:
        for step in bar:
            _set_trainable(console, config.warmup_types if step < config.warmup_steps else None)
            start = _crop_start(stems.shape[-1], crop, generator)
            crop_stems = stems[..., start : start + crop]
            rendered = console.render_graph(crop_stems, gain_staging=True)
            audio_loss = loss_fn(rendered.outputs[0][..., warm:], mix[..., start + warm : start + crop])
            if not bool(torch.isfinite(audio_loss)):
                node_type, nodes = _first_non_finite_node(console, crop_stems)
                parameter = (", ".join(f"{node_type}.{k}" for k in console.params[node_type])
                             if node_type in console.params else None)
                raise NonFiniteFitError(step, "loss", node_type, parameter, nodes)
            loss = audio_loss + config.gain_staging_weight * rendered.gain_staging
            fraction = step / max(config.steps - 1, 1)
            alpha_p = sparsity_start + (sparsity_end - sparsity_start) * fraction
            if alpha_p:
                loss = loss + alpha_p * sparsity_loss(console)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _check_gradients(console, step)
            optimizer.step()
            console.project_()
            result.losses.append(float(audio_loss.detach()))
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
    finally:
        _set_trainable(console, None)
        result.seconds = time.perf_counter() - started
    return result


def check_finite_output(audio: Tensor, what: str) -> None:
    """Raise ``MixrepError`` naming ``what`` if ``audio`` holds NaN or infinite samples."""
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise MixrepError(f"{what} has {bad} non-finite samples; nothing was written")
