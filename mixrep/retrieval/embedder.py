"""What the index needs from an encoder: per-clip style embeddings of a file and a content hash.

The trained :class:`mixrep.inference.style_encoder.StyleEncoder` implements :class:`Embedder`; tests use a
handcrafted one. Everything in :mod:`mixrep.retrieval` takes an ``Embedder`` object, so nothing here
loads a checkpoint.

Shape:
    ``embed_file_clips`` returns ``(clips, embedding_dim)`` float32 rows of unit L2 norm and
    ``(clips,)`` clip start offsets in seconds.
"""

from __future__ import annotations

import os
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from mixrep.errors import CheckpointError, SeparationError

NORM_TOLERANCE = 1e-3
"""Largest accepted deviation of an embedding's L2 norm from 1."""


@runtime_checkable
class Embedder(Protocol):
    """A style encoder seen from the index.

    Attributes:
        embedding_dim: size of one embedding.
        model_hash: content hash of the encoder checkpoint; an index refuses other encoders.

    An embedder that separates mixtures may expose the separator as ``separator`` with a
    ``load()`` method: builds and searches of mixtures call :func:`load_separator` first, so a
    separator that cannot load is one error before the first file, not a failure of each file.
    """

    embedding_dim: int
    model_hash: str

    def embed_file_clips(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """Embed several clips of one audio file.

        Returns:
            ``(clips, embedding_dim)`` float32 L2-normalised embeddings and ``(clips,)`` clip
            offsets in seconds.

        Raises:
            mixrep.errors.AudioReadError: the file cannot be decoded (the builder skips it).
        """
        ...


@runtime_checkable
class StemsEmbedder(Embedder, Protocol):
    """An embedder that also takes pre-separated stems (for stem libraries and ``--stems``)."""

    def embed_stems_clips(self, stem_paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`Embedder.embed_file_clips`, from one file per stem in ``STEMS`` order."""
        ...


def l2_normalize(vectors: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32.

    Shape:
        ``(n, dim)`` in, ``(n, dim)`` out.

    Raises:
        ValueError: a row is all zeros or not finite (nothing to rank by).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"{what}: expected (n, dim) vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] <= 1e-12)
    if bad.any():
        raise ValueError(f"{what}: rows {np.flatnonzero(bad)[:5].tolist()} are zero or not finite")
    return np.ascontiguousarray(vectors / norms)


def usable_clips(clip_embeddings: np.ndarray) -> bool:
    """Whether stored clip embeddings ``(clips, dim)`` can be indexed in either mode: at least one
    clip, every value finite, and neither a clip nor their mean of zero norm."""
    clip_embeddings = np.asarray(clip_embeddings, dtype=np.float32)
    if clip_embeddings.ndim != 2 or clip_embeddings.shape[0] == 0 or not np.isfinite(clip_embeddings).all():
        return False
    norms = np.linalg.norm(np.concatenate([clip_embeddings, clip_embeddings.mean(0, keepdims=True)]), axis=1)
    return bool((norms > 1e-12).all())


def aggregate_clips(clip_embeddings: np.ndarray) -> np.ndarray:
    """One track vector from its clips: the L2-normalised mean of the clip embeddings.

    The mean of unit vectors maximises the summed cosine to the clips; normalising it makes the
    inner product a cosine again.

    Shape:
        ``(clips, dim)`` in, ``(dim,)`` out.
    """
    clip_embeddings = np.asarray(clip_embeddings, dtype=np.float32)
    if clip_embeddings.ndim != 2 or clip_embeddings.shape[0] == 0:
        raise ValueError(f"expected (clips>=1, dim) embeddings, got shape {clip_embeddings.shape}")
    return l2_normalize(clip_embeddings.mean(axis=0, keepdims=True), "aggregate")[0]


def check_clip_embeddings(
    embeddings: np.ndarray, offsets_seconds: np.ndarray, embedding_dim: int, path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an embedder's output for ``path`` and return it as float32/float64 arrays.

    Raises:
        ValueError: wrong shape, non-finite or non-normalised rows (a bug in the embedder, not
            a bad file, so the build stops instead of skipping).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    offsets_seconds = np.asarray(offsets_seconds, dtype=np.float64).reshape(-1)
    if embeddings.ndim != 2 or embeddings.shape[1] != embedding_dim or embeddings.shape[0] == 0:
        raise ValueError(
            f"embedder returned shape {embeddings.shape} for {path}; expected (clips>=1, {embedding_dim})"
        )
    if offsets_seconds.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"embedder returned {embeddings.shape[0]} clips but {offsets_seconds.shape[0]} offsets for {path}"
        )
    norms = np.linalg.norm(embeddings, axis=1)
    if not np.all(np.abs(norms - 1.0) <= NORM_TOLERANCE):
        raise ValueError(
            f"embedder returned non-normalised embeddings for {path} (norms {norms.min():.4f}..{norms.max():.4f}); "
            "embed_file_clips must return unit L2-norm rows"
        )
    return embeddings, offsets_seconds


def check_embedder_matches(
    embedder_hash: str, embedder_dim: int, index_hash: str, index_dim: int, index_path: str | os.PathLike
) -> None:
    """Refuse an encoder other than the one an index was built with.

    Raises:
        CheckpointError: naming both hashes and both embedding sizes.
    """
    if embedder_hash != index_hash or int(embedder_dim) != int(index_dim):
        raise CheckpointError(
            f"the index {index_path} was built with encoder {index_hash} (embedding size {index_dim}) "
            f"but the checkpoint given is {embedder_hash} (embedding size {embedder_dim}); "
            "query with the checkpoint that built the index, or rebuild the index with this one"
        )


def load_separator(embedder: Embedder, stems_hint: str) -> None:
    """Load the separator ``embedder`` uses for mixtures now, if it has one (``embedder.separator.load()``).

    Args:
        stems_hint: a line added to the error saying how to do without separation here (use
            pre-separated stems), e.g. ``"or index stems folders: mixrep index build --source stems"``.

    Raises:
        SeparationError: the separator cannot be built or loaded (missing weights...).
    """
    try:
        load = getattr(getattr(embedder, "separator", None), "load", None)
        if callable(load):
            load()
    except SeparationError as e:
        raise SeparationError(f"{e}\n{stems_hint}") from e
