"""Reading the reference ``mixrep mix`` matches (its tracks are a song folder:
:func:`~mixrep.datasets.song_folder.read_song`).

Every check that can fail runs on the files' headers before anything is decoded or a model runs:
the reference (stems or mix) is mono or stereo and lasts at least the encoder's minimum. Decoding
then checks each file for corrupt samples (more than :data:`~mixrep.audio.io.MAX_SAMPLE_DBFS`
above full scale). Errors name the file and what to do.

Shape:
    reference stems ``(4, 2, samples)`` float32 at the rate asked; a reference mix ``(2, samples)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, check_sample_range, read_segment
from mixrep.constants import MIN_EMBED_SECONDS, STEMS
from mixrep.datasets.song_folder import check_channels
from mixrep.errors import DatasetError
from mixrep.files import require_stem_files


def check_reference_files(paths: list[Path]) -> None:
    """Header checks of the reference's files: readable, mono or stereo, at least
    :data:`~mixrep.constants.MIN_EMBED_SECONDS` long.

    Raises:
        AudioReadError, DatasetError: naming the file.
    """
    for path in paths:
        seconds = check_channels(path)[0]
        if seconds < MIN_EMBED_SECONDS:
            raise DatasetError(f"the reference {path} lasts {seconds:.2f} s; the style encoder needs at least "
                               f"{MIN_EMBED_SECONDS:g} s: pass a longer reference")


def reference_stem_files(folder: Path) -> tuple[Path, ...]:
    """The reference's stem files in :data:`~mixrep.constants.STEMS` order, header-checked."""
    paths = require_stem_files(folder)
    check_reference_files(list(paths))
    return paths


def read_reference_stems(folder: Path, sample_rate: int) -> np.ndarray:
    """The reference stems in ``folder`` ``(4, 2, samples)`` float32 at ``sample_rate``, cut to the
    shortest stem."""
    paths = reference_stem_files(folder)
    seconds = min(audio_info(p)[0] for p in paths)
    stems = np.empty((len(STEMS), 2, int(round(seconds * sample_rate))), dtype=np.float32)
    for i, path in enumerate(paths):
        stems[i] = read_segment(path, 0.0, seconds, sample_rate)
        check_sample_range(stems[i], path, sample_rate)
    return stems


def read_reference_mix(path: Path, sample_rate: int) -> np.ndarray:
    """A reference mix ``(2, samples)`` float32 at ``sample_rate``, header-checked first."""
    check_reference_files([path])
    audio = read_segment(path, 0.0, None, sample_rate)
    check_sample_range(audio, path, sample_rate)
    return audio
