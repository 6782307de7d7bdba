"""mixrep: mixing-style representations of music.

Axis vocabulary used across the package (docstrings refer to it):

- ``(stems, channels, samples)`` for one clip of separated stems, stems in :data:`STEMS` order;
- ``(batch, stems, channels, samples)`` for a batch of them;
- ``(nodes, channels, samples)`` for signals inside the mixing console;
- ``(batch, channels, mels, frames)`` for spectrograms (8 channels = 4 stems x stereo).
"""

from mixrep.constants import SAMPLE_RATE, STEMS

__version__ = "0.1.0"
__all__ = ["SAMPLE_RATE", "STEMS", "__version__"]
