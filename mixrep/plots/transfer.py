"""The comparison figure of ``mixrep mix`` (profiles from :func:`~mixrep.inference.figure.transfer_profiles`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mixrep.constants import STEMS
from mixrep.files import save_figure


def plot_transfer(profiles: dict[str, dict[str, np.ndarray]], path: str | os.PathLike, title: str = "") -> Path:
    """Draw the profiles (``{"reference": ..., "raw sum": ..., "result": ...}``) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    names = list(profiles)
    x = np.arange(len(STEMS))
    for i, name in enumerate(names):
        axes[0, 0].bar(x + (i - 1) * 0.27, profiles[name]["stem_db"], 0.27, label=name)
    axes[0, 0].set_xticks(x, STEMS)
    axes[0, 0].set_ylabel("stem level re mix (dB)")
    axes[0, 0].set_title("balance")
    for name in names:
        p = profiles[name]
        axes[0, 1].semilogx(p["freqs"][1:], p["spectrum_db"][1:], label=name, lw=1)
        axes[1, 0].semilogx(p["band_hz"], p["width_db"], marker="o", label=name)
        axes[1, 1].hist(p["short_db"], bins=30, histtype="step", label=name, density=True)
    axes[0, 1].set(title="long-term spectrum (mid)", xlabel="Hz", ylabel="dB re mean")
    axes[1, 0].set(title="stereo width", xlabel="Hz", ylabel="side / mid (dB)")
    axes[1, 1].set(title="dynamics (0.4 s RMS)", xlabel="dB re mix RMS", ylabel="density")
    for ax in axes.flat:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
