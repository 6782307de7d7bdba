"""Clustered unit vectors: stand-ins for embeddings when measuring index recall and speed.

Real embeddings have neighbourhood structure; uniform random vectors on a high-dimensional sphere
have none (every pair is nearly orthogonal) and no approximate index recalls them well. Here each
vector is a cluster centre plus isotropic noise, renormalised; centres are uniform on the sphere,
cluster sizes are uneven (Dirichlet weights) and each cluster has its own spread.

Shape:
    ``(n, dim)`` float32, unit L2 norm rows.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def cluster_model(dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres ``(clusters, dim)``, weights ``(clusters,)`` and noise-to-signal ratios ``(clusters,)``.

    A ratio ``r`` puts a cluster's points at cosine about ``1 / sqrt(1 + r**2)`` from its centre.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(clusters, 2.0))
    ratios = rng.uniform(0.6, 1.2, size=clusters).astype(np.float32)
    return centres, weights, ratios


def clustered_unit_vectors(n: int, dim: int, clusters: int, seed: int = 0, model_seed: int = 0,
                           chunk: int = 65_536) -> Iterator[np.ndarray]:
    """Yield ``n`` clustered unit vectors in chunks of ``(<=chunk, dim)`` float32.

    The same ``model_seed`` gives the same clusters; ``seed`` draws the points, so a query set
    drawn with another ``seed`` comes from the same distribution as the library.
    """
    centres, weights, ratios = cluster_model(dim, clusters, model_seed)
    rng = np.random.default_rng((model_seed, seed))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.choice(clusters, size=m, p=weights)
        noise = rng.standard_normal((m, dim)).astype(np.float32) * (ratios[labels, None] / np.sqrt(dim))
        x = centres[labels] + noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x
