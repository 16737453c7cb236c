"""Order a batch of linear systems so that neighbours are similar (the "sorting" of SKR).

Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace Recycling",
ICLR 2024: a Krylov subspace recycled from one system helps the next one the more, the closer
their matrices are. Systems are described by their parameter fields (for Darcy, the
coefficient); the distance is the Frobenius norm of the difference.
"""

from __future__ import annotations

import numpy as np


def greedy_order(features: np.ndarray, start: int = 0) -> np.ndarray:
    """Greedy nearest-neighbour tour: from ``start``, always go to the closest unvisited system.

    ``features`` is ``[n, ...]``; returns a permutation of ``range(n)``. Distances are computed
    from the Gram matrix, so the cost is one ``n x n`` matrix product.
    """
    flat = features.reshape(len(features), -1).astype(np.float64)
    squared = np.einsum("ij,ij->i", flat, flat)
    distance = squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T
    visited = np.zeros(len(flat), dtype=bool)
    order = [start]
    visited[start] = True
    for _ in range(len(flat) - 1):
        row = np.where(visited, np.inf, distance[order[-1]])
        order.append(int(np.argmin(row)))
        visited[order[-1]] = True
    return np.asarray(order)


def grouped_order(features: np.ndarray, group_size: int = 1000) -> np.ndarray:
    """Greedy order for large batches: split into groups of similar systems, order each, concatenate.

    Groups come from sorting the systems along the first principal direction of the features
    (a cheap one-dimensional coordinate), then cutting that order into chunks of
    ``group_size``; each chunk is ordered greedily and starts where the previous one ended.
    """
    if len(features) <= group_size:
        return greedy_order(features)
    flat = features.reshape(len(features), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    direction = np.linalg.svd(centred[:: max(1, len(flat) // 2000)], full_matrices=False)[2][0]
    coarse = np.argsort(centred @ direction)
    tour: list[np.ndarray] = []
    for chunk in np.array_split(coarse, int(np.ceil(len(flat) / group_size))):
        tour.append(chunk[greedy_order(flat[chunk])])
    return np.concatenate(tour)


def tour_length(features: np.ndarray, order: np.ndarray) -> float:
    """Summed Frobenius distance between consecutive systems in ``order``."""
    flat = features.reshape(len(features), -1)[order].astype(np.float64)
    return float(np.linalg.norm(np.diff(flat, axis=0), axis=1).sum())
