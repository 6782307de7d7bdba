"""A settings file rendered with real plugins: :func:`~mixrep.styles.mix_style.render_mix` (pedalboard)
on a song's tracks, the mix and optionally its four stems written all or none.

The song is read by the caller (``mixrep export pedalboard`` reads the folder with the one song
reader, at the settings file's sample rate); this module takes the tracks already read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixrep.audio.io import check_audio_extension, write_audio
from mixrep.audio.stems import stem_index
from mixrep.constants import STEMS
from mixrep.errors import OutputError
from mixrep.files import StagedFiles, check_output_file
from mixrep.styles.mix_style import MixStyle, render_mix
from mixrep.styles.style_file import StyleFile, StyleFileError, check_style


def check_song_for_style(style_file: StyleFile | MixStyle, names: Sequence[str], stems: Sequence[str | int],
                         sample_rate: int) -> MixStyle:
    """The style, once every track has a strip and the song's rate is the settings file's.

    Raises:
        StyleFileError: a track without a strip, or another sample rate than the file's (with the fix).
    """
    if isinstance(style_file, StyleFile):
        if int(sample_rate) != style_file.sample_rate:
            raise StyleFileError(f"the song is at {sample_rate} Hz but the settings were made at "
                                 f"{style_file.sample_rate} Hz; read the tracks at {style_file.sample_rate} Hz")
        style = style_file.style
    else:
        style = style_file
    return check_style(style, names, stems, sample_rate, where="mix style for this song").style


def check_outputs(out: str | os.PathLike, stems_dir: str | os.PathLike | None = None,
                  tracks_folder: str | os.PathLike | None = None) -> list[Path]:
    """The files :func:`render_style_files` writes, once each can be written (before any work).

    Args:
        tracks_folder: the song folder read: no audio output may lie directly in it (a later run
            would read it as a track).

    Raises:
        OutputError, ValueError: a location that cannot be written, a format that cannot be written,
            an output inside the tracks folder.
    """
    targets = [check_audio_extension(check_output_file(out, "mix"), "mix")]
    if stems_dir is not None:
        targets += [check_output_file(Path(stems_dir) / f"{stem}.wav", f"{stem} stem") for stem in STEMS]
    if tracks_folder is not None:
        folder = Path(tracks_folder).resolve()
        for path in targets:
            if path.resolve().parent == folder:
                raise OutputError(f"{path} lies inside the tracks folder {tracks_folder}: a later run would read it "
                                  f"as a track; write elsewhere")
    return targets


def render_style_files(style_file: StyleFile | MixStyle, tracks: np.ndarray, names: Sequence[str],
                       stems: Sequence[str | int], sample_rate: int, out: str | os.PathLike,
                       stems_dir: str | os.PathLike | None = None) -> list[Path]:
    """Render a style on a song's tracks and write the mix (and its four stems), all or none.

    Args:
        style_file: a read settings file (its sample rate must be the song's) or a style.
        tracks: the dry tracks.
        names, stems: each track's name and stem class.
        sample_rate: Hz of ``tracks``.
        out: the mix file (``.wav`` keeps peaks above full scale).
        stems_dir: if given, ``drums.wav``, ``bass.wav``, ``other.wav``, ``vocals.wav`` there (they
            sum to the mix).

    Returns:
        The files written.

    Raises:
        StyleFileError: a track without a strip, a rate mismatch (checked before rendering).
        OutputError, ValueError: an output that cannot be written (checked before rendering).

    Shape:
        tracks ``(tracks, channels=2, samples)``; the mix ``(2, samples)``; stems ``(2, samples)`` each.
    """
    style = check_song_for_style(style_file, names, stems, sample_rate)
    targets = check_outputs(out, stems_dir)
    groups = [STEMS[stem_index(s)] for s in stems]
    rendered = render_mix(tracks, style, sample_rate, names, groups)
    audio = [rendered.sum(axis=0)] + (list(rendered) if stems_dir is not None else [])
    with StagedFiles() as staged:
        for path, signal in zip(targets, audio):
            with staged.file(path) as tmp:
                write_audio(tmp, signal, sample_rate)
        return staged.commit()
