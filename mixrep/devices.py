"""The one rule for picking a torch device.

``None`` or ``"auto"`` means the first CUDA GPU when one is visible, else the CPU; anything else
(``"cpu"``, ``"cuda:1"``, a :class:`torch.device`) is taken as given. Every command's
``--device`` option and every ``device=`` argument go through :func:`resolve_device`.
"""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> :func:`default_device`; anything else as a :class:`torch.device`.

    Raises:
        ValueError: ``device`` is not a device name torch understands (e.g. ``"gpu"``).
    """
    if device is None or str(device) == "auto":
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
