"""mixrep: mixing-style representations of music.

    >>> from mixrep import StyleEncoder, StyleTransfer   # loaded on first use: ``import mixrep`` stays light

Package layers, lowest first: the pipeline from audio to commands. A module imports only from its
own layer or lower ones (``tests/test_layering.py`` parses every import, function-local ones
included, and fails on an upward one; it also fails on any import circle between files); the two
packages of layer 5 do not import each other.

1. ``mixrep.constants``, ``mixrep.errors``, ``mixrep.files`` (atomic writes, hashing, stem-file
   discovery), ``mixrep.devices`` (default device), ``mixrep.tracks`` (Track / Source contracts)
2. ``mixrep.audio``: I/O, levels and meters, stems, multitracks and their files, FluidSynth rendering (NumPy)
3. ``mixrep.styles``: mixing styles: per-stem effect chains, the per-track mixing-style space,
   style spaces that draw one style for a training pair (pedalboard)
4. ``mixrep.frontend``: the batched torch front end (log-mel + mix features)
5. ``mixrep.console`` (the differentiable mixing console and the spec a head drives),
   ``mixrep.separation`` (separators, stem cache)
6. ``mixrep.models``: plain nn.Modules (encoder, regression head) and the one checkpoint contract
7. ``mixrep.corpora``: the synthetic and soundfont corpora mixrep renders
8. ``mixrep.datasets``: readers (song folders, FMA, audio and stem folders, Slakh2100, MedleyDB,
   MoisesDB) and the one registry that opens every source by name, the corpora included
9. ``mixrep.graphs``: processing graphs: pruning search, graph prediction, cases with known graphs
10. ``mixrep.plots``: figures for people (matplotlib, loaded only when a figure is drawn)
11. ``mixrep.inference``: StyleEncoder and StyleTransfer (no Lightning, no FAISS, no training code)
12. ``mixrep.retrieval``: the FAISS library index, style-retrieval metrics and style sets
13. ``mixrep.training``: LightningModules, their datasets and data modules, callbacks
14. ``mixrep.evaluation``: the encoder's evaluation (``mixrep evaluate``) and the transfer's
15. ``mixrep.cli`` and every ``*.cli`` / ``*_cli`` command module

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
    ("mixrep.styles",),
    ("mixrep.frontend",),
    ("mixrep.console", "mixrep.separation"),
    ("mixrep.models",),
    ("mixrep.corpora",),
    ("mixrep.datasets",),
    ("mixrep.graphs",),
    ("mixrep.plots", "mixrep.export", "mixrep.pages"),
    ("mixrep.inference",),
    ("mixrep.retrieval",),
    ("mixrep.training",),
    ("mixrep.evaluation",),
    ("mixrep.cli",),
)
"""The layer order above as data: module prefixes per layer (``*.cli`` and ``*_cli`` modules are the top layer)."""

_LAZY = {"StyleEncoder": "mixrep.inference.style_encoder", "StyleTransfer": "mixrep.inference.style_transfer"}


def __getattr__(name: str):
    """``mixrep.StyleEncoder`` and ``mixrep.StyleTransfer``, imported on first use (torch is heavy)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixrep' has no attribute {name!r}")


__all__ = ["LAYERS", "SAMPLE_RATE", "STEMS", "StyleEncoder", "StyleTransfer", "__version__"]
