"""Embedding inputs one by one for searches and ``mixrep embed``: a bad input is reported, not fatal.

Inputs are checked first (a folder given as an audio file, a stems folder missing a stem), then the
embedder's separator is loaded once if mixtures are to be separated (a separator that cannot load
is one error for the whole batch), then each input is embedded; an input that fails gets its
error and the others go on.

Shape:
    ``EmbeddedInput.embeddings`` is ``(clips, embedding_dim)`` float32, ``offsets_seconds`` ``(clips,)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mixrep.errors import MixrepError
from mixrep.files import digest, file_chunks
from mixrep.retrieval.embedder import Embedder, check_clip_embeddings, load_separator
from mixrep.retrieval.library import audio_file_argument, stems_folder_argument
from mixrep.retrieval.screening import SILENT_REASON, classify_failure, is_silent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedInput:
    """One embedded input, or why it could not be embedded.

    Attributes:
        path: the input as given (an audio file, or a stems folder).
        files: the audio file, or the stem files in STEMS order (empty if ``path`` was refused).
        embeddings: ``(clips, embedding_dim)`` unit-norm clip embeddings (``None`` with ``error``).
        offsets_seconds: ``(clips,)`` clip starts (``None`` with ``error``).
        content_sha1: SHA-1 of the bytes of ``files`` (finds copies in a library).
        silent: the input is silent (see :mod:`mixrep.retrieval.screening`); it is embedded anyway.
        error: ``"<kind>: <reason>"`` when the input could not be embedded, else ``None``.
    """

    path: Path
    files: list[Path]
    embeddings: np.ndarray | None = None
    offsets_seconds: np.ndarray | None = None
    content_sha1: str = ""
    silent: bool = False
    error: str | None = None


def embed_inputs(embedder: Embedder, paths: Sequence[str | os.PathLike], stems: bool, stems_hint: str,
                 max_clips: int | None = None) -> list[EmbeddedInput]:
    """Embed each input (audio files, or stems folders with ``stems``), in order.

    Args:
        stems_hint: added to the error when the separator cannot load (how to use stems instead).
        max_clips: clips per input, for embedders that take it (``None``: the embedder's default).

    Raises:
        MixrepError: ``stems`` with an embedder that cannot embed stems.
        SeparationError: the embedder's separator cannot be loaded.
        ValueError: the embedder returned malformed embeddings (a bug, not a bad input).
    """
    if stems and not hasattr(embedder, "embed_stems_clips"):
        raise MixrepError("this encoder cannot embed pre-separated stems (no embed_stems_clips); "
                          "give the mixtures instead of --stems")
    checked: list[EmbeddedInput] = []
    for path in map(Path, paths):
        try:
            checked.append(EmbeddedInput(path, stems_folder_argument(path) if stems else [audio_file_argument(path)]))
        except MixrepError as e:
            checked.append(_failed(path, e))
    if not stems and any(c.error is None for c in checked):
        load_separator(embedder, stems_hint)
    options = {} if max_clips is None else {"max_clips": max_clips}
    out = []
    for item in checked:
        if item.error is not None:
            out.append(item)
            continue
        try:
            embeddings, offsets = (embedder.embed_stems_clips(item.files, **options) if stems
                                   else embedder.embed_file_clips(item.files[0], **options))
            silent = is_silent(item.files)
            sha1 = digest(file_chunks(item.files), "sha1")  # compared with the store's content_sha1
        except Exception as e:  # one bad input does not stop the others
            out.append(_failed(item.path, e, item.files))
            continue
        embeddings, offsets = check_clip_embeddings(embeddings, offsets, embedder.embedding_dim, item.path)
        if silent:
            log.warning("%s is %s", item.path, SILENT_REASON)
        out.append(EmbeddedInput(item.path, item.files, embeddings, offsets, sha1, silent))
    return out


def _failed(path: Path, error: Exception, files: Sequence[Path] = ()) -> EmbeddedInput:
    kind, reason = classify_failure(error)
    log.debug("cannot embed %s (%s): %s", path, kind, reason)  # the caller reports ``error``
    return EmbeddedInput(path, list(files), error=f"{kind}: {reason}")
