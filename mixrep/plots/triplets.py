"""Figures for people: triplet spectrograms side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mixrep.constants import STEMS  # noqa: E402
from mixrep.files import save_figure


def plot_triplet(mels: dict[str, torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Draw anchor / positive / negative log-mels: one column per side, one row per stem.

    Each cell shows the stem's left channel (the right one is drawn the same way and omitted).

    Shape:
        mels[side]: ``(channels=8, n_mels, frames)``, channel ``2 * stem`` is the stem's left.
    """
    sides = list(mels)
    vmin = min(float(m.min()) for m in mels.values())
    vmax = max(float(m.max()) for m in mels.values())
    fig, axes = plt.subplots(len(STEMS), len(sides), figsize=(3.2 * len(sides), 1.6 * len(STEMS)),
                             sharex=True, sharey=True, squeeze=False)
    for col, side in enumerate(sides):
        for row, stem in enumerate(STEMS):
            ax = axes[row, col]
            image = ax.imshow(mels[side][2 * row].numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax,
                              cmap="magma")
            if row == 0:
                ax.set_title(side)
            if col == 0:
                ax.set_ylabel(f"{stem}\nmel bin")
        axes[-1, col].set_xlabel("frame")
    fig.colorbar(image, ax=axes, shrink=0.6, label="log-mel")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)
