"""mixrep: mixing-style representations of music.

Package layers, lowest first. A module imports only from its own layer or lower ones
(``tests/test_layering.py`` parses every import, function-local ones included, and fails on an
upward one); within layer 4 the three packages do not import each other.

1. ``mixrep.constants``, ``mixrep.errors``, ``mixrep.files`` (atomic writes, hashing, stem-file
   discovery), ``mixrep.devices`` (default device), ``mixrep.tracks`` (Track / Source contracts)
2. ``mixrep.audio``: I/O, style chains and augmentations (NumPy, pedalboard)
3. ``mixrep.frontend``: the batched torch front end (log-mel + mix features)
4. ``mixrep.models`` (plain nn.Modules, checkpoint self-description), ``mixrep.console``
   (differentiable console), ``mixrep.separation`` (separators, stem cache)
5. ``mixrep.data``: sources, pair strategies, triplets, DataModule
6. ``mixrep.api``: StyleEncoder (loads checkpoints without Lightning or FAISS); ``mixrep.transfer``:
   StyleTransfer (Stage 2: a regression head's checkpoint, refinement, physical report)
7. ``mixrep.eval``: metrics, style sets, ``mixrep evaluate``
8. ``mixrep.training``: LightningModules, callbacks, LightningCLI
9. ``mixrep.index``: FAISS library index
10. ``mixrep.cli`` and every ``mixrep.<package>.cli`` / ``*_cli`` command module

Axis vocabulary used across the package (docstrings refer to it):

- ``(stems, channels, samples)`` for one clip of separated stems, stems in :data:`STEMS` order;
- ``(batch, stems, channels, samples)`` for a batch of them;
- ``(nodes, channels, samples)`` for signals inside the mixing console;
- ``(batch, channels, mels, frames)`` for spectrograms (8 channels = 4 stems x stereo).
"""

from mixrep.constants import SAMPLE_RATE, STEMS

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("mixrep.constants", "mixrep.errors", "mixrep.files", "mixrep.devices", "mixrep.tracks"),
    ("mixrep.audio",),
    ("mixrep.frontend",),
    ("mixrep.models", "mixrep.console", "mixrep.separation"),
    ("mixrep.data",),
    ("mixrep.api", "mixrep.transfer"),
    ("mixrep.eval",),
    ("mixrep.training",),
    ("mixrep.index",),
    ("mixrep.cli",),
)
"""The layer order above as data: module prefixes per layer (``*.cli`` and ``*_cli`` modules are the top layer)."""

__all__ = ["LAYERS", "SAMPLE_RATE", "STEMS", "__version__"]
