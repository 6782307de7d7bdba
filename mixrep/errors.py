"""Exceptions with messages a user can act on (which file, what is wrong, what to do)."""

from __future__ import annotations

import re


class MixrepError(Exception):
    """Base class of every error mixrep raises on purpose."""


class AudioReadError(MixrepError):
    """An audio file could not be opened or decoded (corrupt, unsupported, unreadable)."""


class DatasetError(MixrepError):
    """A dataset root, metadata file or folder layout is missing or malformed."""


class SeparationError(MixrepError):
    """A source separator could not be loaded or run."""


class CheckpointError(MixrepError):
    """A checkpoint is missing, corrupt or of another kind."""


class OutputError(MixrepError):
    """An output location cannot be written, or writing there would replace or mix with an input."""


def refused_global(error: BaseException) -> str:
    """What a ``torch.load(weights_only=True)`` refusal names: the first global it would have had to
    import (``io.open``...), else the first line of its message."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return found.group(1)
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
