"""The leaves a point is stored in: its nearest center's (the primary leaf) and, with
SOAR, one more (csrc/quantization/soar.h), both in the space the leaves were chosen in
(the lifted one with augment_norms, training.NormLift).

Where neither is known, both come from one pass over the centers: the spill rule's scores
of every center are the squared distances that an exact search of the centers ranks
(the same float32 values, ties to the smaller center), so the primary leaf is the one
primary_leaves gives, and a build does not pay for that search a second time.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .training import NormLift, assign


def primary_leaves(x: np.ndarray, centroids: np.ndarray, lift: NormLift | None = None,
                   num_threads: int = 0) -> np.ndarray:
    """int64 [n]: the leaf of each row of x (float32 [n, d]), its nearest center."""
    if lift is not None:
        return lift.assign(x, centroids, num_threads)
    return assign(x, centroids, num_threads=num_threads)[0]


def leaves_with_spill(x: np.ndarray, centroids: np.ndarray, soar_lambda: float, lift: NormLift | None = None,
                      num_threads: int = 0, primary: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(primary, secondary), int64 [n] each: the primary leaf of each row of x and its SOAR
    leaf (equal to the primary where the point is not spilled). `primary`: the primary
    leaves when already known; else found in the same pass (what primary_leaves gives)."""
    points, centers = (lift.rows(x), lift.centers(centroids)) if lift is not None else \
        (np.ascontiguousarray(x, np.float32), np.ascontiguousarray(centroids, np.float32))
    if primary is None:
        nearest, secondary = _core.nearest_and_spill(points, centers, float(soar_lambda), num_threads)
        return nearest.astype(np.int64), secondary.astype(np.int64)
    primary = np.ascontiguousarray(primary, np.int64)
    return primary, _core.soar_assign(points, centers, primary, float(soar_lambda), num_threads).astype(np.int64)
