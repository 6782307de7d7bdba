"""Fitting a console to a mix (seed section 2.3).

Every step renders a random crop of the stems (seed: 3.8 s, batch 1), compares the part after the
warm-up second with the target mix using :class:`~mixrep.console.loss.MixLoss`, adds
``gain_staging_weight`` (seed: 1e-3) times the gain-staging loss, and takes an AdamW step
(seed: learning rate 0.01) on all processor parameters and dry/wet weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mixrep.console.console import MixingConsole
from mixrep.console.loss import MixLoss, log_spectrogram_db

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    """Optimisation settings; defaults are the seed's except ``steps`` (seed: 12k)."""

    steps: int = 1000
    learning_rate: float = 0.01
    crop_seconds: float = 3.8
    warmup_seconds: float = 1.0
    gain_staging_weight: float = 1e-3
    seed: int = 0
    progress: bool = True


@dataclass
class FitResult:
    """Per-step training losses (audio loss on the crop, without regularisation)."""

    losses: list[float] = field(default_factory=list)


def _crop_bounds(length: int, crop: int, generator: torch.Generator) -> int:
    if length <= crop:
        return 0
    return int(torch.randint(0, length - crop + 1, (1,), generator=generator))


def evaluate(console: MixingConsole, stems: Tensor, mix: Tensor, loss_fn: MixLoss | None = None,
             warmup_seconds: float = 0.0) -> float:
    """Audio loss of the console's render of the whole of ``stems`` (after ``warmup_seconds``)."""
    loss_fn = loss_fn or MixLoss(console.sample_rate).to(stems.device)
    warm = int(warmup_seconds * console.sample_rate)
    with torch.no_grad():
        estimate = console.render(stems)
        return float(loss_fn(estimate[..., warm:], mix[..., warm:]))


def fit(console: MixingConsole, stems: Tensor, mix: Tensor, config: FitConfig | None = None,
        loss_fn: MixLoss | None = None) -> FitResult:
    """Optimise ``console``'s parameters in place so that its render of ``stems`` matches ``mix``.

    Args:
        stems: ``(tracks, 2, samples)`` dry tracks, on the device the console lives on.
        mix: ``(2, samples)`` target.

    Raises:
        ValueError: mismatched lengths or a crop not longer than the warm-up.
    """
    config = config or FitConfig()
    if mix.shape != (2, stems.shape[-1]):
        raise ValueError(f"mix {tuple(mix.shape)} does not match stems {tuple(stems.shape)}: "
                         "expected (2, samples) with the stems' length")
    sr = console.sample_rate
    crop = int(round(config.crop_seconds * sr))
    warm = int(round(config.warmup_seconds * sr))
    if crop <= warm:
        raise ValueError(f"crop_seconds {config.crop_seconds} must exceed warmup_seconds "
                         f"{config.warmup_seconds}")
    loss_fn = loss_fn or MixLoss(sr).to(stems.device)
    optimizer = torch.optim.AdamW(console.params.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    result = FitResult()
    bar = tqdm(range(config.steps), disable=not config.progress, desc="fit", unit="step")
    for _ in bar:
        start = _crop_bounds(stems.shape[-1], crop, generator)
        end = start + crop
        rendered = console.render_graph(stems[..., start:end], gain_staging=True)
        estimate = rendered.outputs[0][..., warm:]
        audio_loss = loss_fn(estimate, mix[..., start + warm : end])
        loss = audio_loss + config.gain_staging_weight * rendered.gain_staging
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.losses.append(float(audio_loss.detach()))
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
    return result


def plot_spectrogram_error(estimate: Tensor, target: Tensor, path: str | os.PathLike,
                           sample_rate: int, title: str = "") -> Path:
    """Mid/side log spectrograms of target and estimate and their difference (seed figure 7).

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
