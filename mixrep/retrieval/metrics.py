"""Style-retrieval metrics: does the nearest neighbour share the mix, not the song?

The evaluation set holds several songs, each rendered under several mixing styles (one style =
one set of per-stem processing applied identically to every song). For a query (song m, style s):

- relevant items: style s on every other song m' != m;
- distractors: every other item, including song m under the other styles — a model that
  recognises songs instead of mixes ranks those first and scores low.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score


@dataclass(frozen=True)
class StyleRetrievalScores:
    """Attributes:
        map: mean average precision over queries (relevant = same style, other song).
        recall_at_1: share of queries whose nearest neighbour is relevant.
        style_over_song: among queries whose nearest neighbour shares the style or the song,
            the share that shares the style (1.0: mixes win; 0.0: songs win).
        queries: number of queries.
    """

    map: float
    recall_at_1: float
    style_over_song: float
    queries: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def cosine_similarity(embeddings: np.ndarray) -> np.ndarray:
    """``(items, dim)`` -> ``(items, items)`` cosine similarities (zero vectors score 0)."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def style_retrieval_scores(embeddings: np.ndarray, song_ids: np.ndarray, style_ids: np.ndarray
                           ) -> StyleRetrievalScores:
    """Score an embedding of the evaluation set.

    Shape:
        embeddings: ``(items, dim)``; song_ids, style_ids: ``(items,)`` integer labels.
    """
    embeddings = np.asarray(embeddings)
    song_ids, style_ids = np.asarray(song_ids), np.asarray(style_ids)
    n = len(embeddings)
    if not (len(song_ids) == len(style_ids) == n):
        raise ValueError(f"got {n} embeddings, {len(song_ids)} song ids, {len(style_ids)} style ids")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or inf")
    similarity = cosine_similarity(embeddings)
    aps, hits, style_nn, song_nn = [], 0, 0, 0
    for i in range(n):
        others = np.arange(n) != i
        relevant = (style_ids == style_ids[i]) & (song_ids != song_ids[i])
        if not relevant.any():
            continue
        scores = similarity[i, others]
        aps.append(average_precision_score(relevant[others], scores))
        nearest = np.flatnonzero(others)[np.argmax(scores)]
        hits += bool(relevant[nearest])
        style_nn += bool(style_ids[nearest] == style_ids[i] and song_ids[nearest] != song_ids[i])
        song_nn += bool(song_ids[nearest] == song_ids[i] and style_ids[nearest] != style_ids[i])
    if not aps:
        raise ValueError("no query has a relevant item: the set needs >= 2 songs per style")
    return StyleRetrievalScores(
        map=float(np.mean(aps)), recall_at_1=hits / len(aps),
        style_over_song=style_nn / max(style_nn + song_nn, 1), queries=len(aps))


def standardize(features: np.ndarray) -> np.ndarray:
    """Z-score each column (constant columns become 0): the feature baseline's embedding."""
    features = np.asarray(features, dtype=np.float64)
    std = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
