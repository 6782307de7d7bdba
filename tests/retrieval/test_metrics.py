"""Style-retrieval metrics against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.retrieval.metrics import standardize, style_retrieval_scores

# 3 songs x 2 styles; item = song * 2 + style
SONGS = np.repeat(np.arange(3), 2)
STYLES = np.tile(np.arange(2), 3)


def test_embedding_of_the_style_alone_is_perfect():
    embeddings = np.eye(2)[STYLES] + 1e-3 * np.random.default_rng(0).standard_normal((6, 2))
    scores = style_retrieval_scores(embeddings, SONGS, STYLES)
    assert scores.map == pytest.approx(1.0)
    assert scores.recall_at_1 == 1.0 and scores.style_over_song == 1.0 and scores.queries == 6


def test_embedding_of_the_song_alone_never_finds_the_style_first():
    embeddings = np.eye(3)[SONGS] + 1e-3 * np.random.default_rng(0).standard_normal((6, 3))
    scores = style_retrieval_scores(embeddings, SONGS, STYLES)
    assert scores.recall_at_1 == 0.0 and scores.style_over_song == 0.0
    # Each query ranks its own song's other style first, then 4 items of which 2 are relevant in
    # an arbitrary order: AP is at most (1/2 + 2/3) / 2 and at least (1/4 + 2/5) / 2.
    assert (1 / 4 + 2 / 5) / 2 - 1e-9 <= scores.map <= (1 / 2 + 2 / 3) / 2 + 1e-9


def test_hand_computed_average_precision():
    # 2 songs x 2 styles on the unit circle; each query has exactly one relevant item, so its AP is
    # 1 / (rank of that item). Angles: (song0, style0) 0, (song0, style1) 50, (song1, style0) 30,
    # (song1, style1) 105 degrees. Ranks of the relevant item: 1, 3, 2, 1.
    angles = np.deg2rad([0.0, 50.0, 30.0, 105.0])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    scores = style_retrieval_scores(embeddings, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert scores.map == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)
    assert scores.recall_at_1 == 0.5
    # Nearest neighbours: q0 -> style match, q1 and q2 -> neither, q3 -> style match.
    assert scores.style_over_song == 1.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        style_retrieval_scores(np.full((6, 2), np.nan), SONGS, STYLES)
    with pytest.raises(ValueError, match="5 song ids"):
        style_retrieval_scores(np.ones((6, 2)), SONGS[:5], STYLES)


def test_standardize_handles_constant_columns():
    z = standardize(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0]])
