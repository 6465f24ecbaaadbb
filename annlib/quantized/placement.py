"""Placing points in a trained index: the one rule that build(), upsert() and
rebalance() share.

A point goes to the leaf of its nearest center and, with SOAR, to one more
leaf: argmin_c |x - c|^2 + lambda <x - c, r^>^2, r^ its unit residual to the
primary center (csrc/quantization/soar.h). In each leaf it holds a copy: the
AH codes of its residual x - c under the anisotropic loss
eta |r_par|^2 + |r_perp|^2 (csrc/quantization/ah_encode.h), and for squared
L2 a per-slot term. Squared L2 runs as inner product through the L2 -> MIPS
reduction: <q, x> - |x|^2/2 ranks like -|q - x|^2. The extra coordinate is
not quantized but kept per slot, computed from the point as its codes
reconstruct it (l2_point_term), so the scan scores -|q - x~|^2/2. With
reordering, the point also gets a row in the reorder copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._progress import progress_bar
from ..config import IndexConfig
from .assignment import leaves_with_spill, primary_leaves
from .training import NormLift

ENCODE_CHUNK = 1 << 16  # points encoded per call: bounded memory, a progress step


@dataclass
class Placement:
    """Where each of n points goes, and what its copies hold."""
    leaves: np.ndarray            # int64 [n] primary leaf
    codes: np.ndarray             # uint8 [n, num_blocks]
    bias: np.ndarray | None       # float32 [n]: squared L2's slot term, else None
    spilled: np.ndarray           # int64 [m]: the points with a second copy
    spill_leaves: np.ndarray      # int64 [m]
    spill_codes: np.ndarray       # uint8 [m, num_blocks]
    spill_bias: np.ndarray | None  # float32 [m]
    rows: dict | None             # the reorder rows (_core.pack_rows), or None


def place_points(config: IndexConfig, centroids: np.ndarray, codebooks: np.ndarray, x: np.ndarray,
                 num_threads: int = 0, progress: bool = False, leaves: np.ndarray | None = None,
                 lift: NormLift | None = None, rows_dtype: str | None = None) -> Placement:
    """The placement of points x (float32 [n, d], unit rows for cosine) in an index with these
    trained centroids [L, d] and codebooks [num_blocks, 16, dims_per_block]; `leaves`
    when the primary leaves are already known, else found here (with SOAR, in the spill
    assignment's own pass: assignment.py); `lift`:
    the index's NormLift (augment_norms), whose space the leaves are chosen in; `rows_dtype`:
    the dtype the reorder rows are packed in (reorder_copy.py; default the config's)."""
    tree = config.tree
    if tree is not None and tree.soar_lambda is not None:
        leaves, secondary = leaves_with_spill(x, centroids, tree.soar_lambda, lift, num_threads, primary=leaves)
        spilled = np.flatnonzero(secondary != leaves)
        spill_leaves = secondary[spilled]
    else:
        if leaves is None:
            leaves = primary_leaves(x, centroids, lift, num_threads)
        spilled = spill_leaves = np.empty(0, np.int64)
    copies = np.concatenate([np.arange(len(x), dtype=np.int64), spilled])
    copy_leaves = np.concatenate([np.asarray(leaves, np.int64), spill_leaves])
    codes = _encode(x, centroids, codebooks, copies, copy_leaves, config, num_threads, progress)
    bias = None
    if config.distance_measure == "squared_l2":
        bias = l2_point_term(centroids, copy_leaves, codes, codebooks, num_threads)
    n = len(x)
    rows = None
    if config.reorder is not None:
        rows = _core.pack_rows(x, rows_dtype or config.reorder.dtype, config.distance_measure == "squared_l2",
                               num_threads)
    return Placement(np.asarray(leaves, np.int64), codes[:n], None if bias is None else bias[:n], spilled,
                     spill_leaves, codes[n:], None if bias is None else bias[n:], rows)


def place_in_index(config: IndexConfig, arrays: dict, x: np.ndarray, num_threads: int = 0,
                   rows_dtype: str | None = None) -> Placement:
    """place_points with the centers, codebooks and NormLift an index's arrays hold: how an
    upsert places new points (one index's, or a sharded index's coordinator and build tasks)."""
    centroids = np.asarray(arrays["centroids"])
    codebooks = codebooks_of(arrays, int(np.asarray(arrays["meta"])[2]))
    return place_points(config, centroids, codebooks, x, num_threads, lift=lift_of(config, arrays, len(centroids)),
                        rows_dtype=rows_dtype)


def _encode(x, centroids, codebooks, points, leaves, config, num_threads, progress):
    """AH codes of x[points] - centroids[leaves], in chunks (bounded memory, a progress
    bar, Ctrl-C between chunks); the residual rows are formed in C++, one at a time."""
    ahc = config.score_ah
    threshold = ahc.anisotropic_quantization_threshold
    x = np.ascontiguousarray(x, np.float32)
    centroids = np.ascontiguousarray(centroids, np.float32)
    codebooks = np.ascontiguousarray(codebooks, np.float32)
    points = np.ascontiguousarray(points, np.int64)
    leaves = np.ascontiguousarray(leaves, np.int64)
    codes = np.empty((len(points), codebooks.shape[0]), np.uint8)
    for i in progress_bar(range(0, len(points), ENCODE_CHUNK), progress=progress, desc="AH encode", unit="chunk"):
        codes[i:i + ENCODE_CHUNK] = _core.ah_encode_copies(
            x, points[i:i + ENCODE_CHUNK], centroids, leaves[i:i + ENCODE_CHUNK], codebooks,
            0.0 if threshold is None else float(threshold), x.shape[1], ahc.encoding_rounds, num_threads)
    return codes


def reconstructed_norm2(centers: np.ndarray, leaves: np.ndarray, codes: np.ndarray,
                        codebooks: np.ndarray, num_threads: int = 0) -> np.ndarray:
    """|c[leaf] + decoded residual|^2 per row (float64; the sum in float32, as x~ is held):
    the squared norm of the point as the codes reconstruct it."""
    return _core.reconstructed_norm2(np.ascontiguousarray(centers, np.float32),
                                     np.ascontiguousarray(leaves, np.int64), np.ascontiguousarray(codes, np.uint8),
                                     np.ascontiguousarray(codebooks, np.float32), num_threads)


def l2_point_term(centroids, leaves, codes, codebooks, num_threads: int = 0) -> np.ndarray:
    """The per-slot term of squared L2 as inner product: (|c|^2 - |x~|^2) / 2, with x~ = c +
    the decoded residual (the point as its codes reconstruct it). With the centroid score
    <q, c> - |c|^2/2 and the LUT sum <q, r~>, the scan's score is <q, x~> - |x~|^2/2, i.e.
    -|q - x~|^2/2 up to a per-query constant. Using the exact |x|^2 instead would leave the
    error 2<q, x - x~>, which grows with |q|; this one is 2<q - x, x - x~> + |x - x~|^2,
    which grows with the distance |q - x|, small for the neighbours that matter. (SIFT,
    |q| ~ 512 and neighbour distances ~ 250: recall@10 at 24 of 800 leaves, 40 reordered,
    went from 0.832 to 0.920.)"""
    c_norm2 = np.einsum("ij,ij->i", centroids, centroids, dtype=np.float64)
    return (0.5 * (c_norm2[leaves] - reconstructed_norm2(centroids, leaves, codes, codebooks, num_threads))
            ).astype(np.float32)


def codebooks_of(arrays: dict, num_blocks: int) -> np.ndarray:
    """The AH codebooks [num_blocks, 16, dims_per_block] from a saved index's lut_centers
    ([num_blocks][dims_per_block][16], the LUT build's layout)."""
    return np.ascontiguousarray(np.asarray(arrays["lut_centers"]).reshape(num_blocks, -1, 16).transpose(0, 2, 1))


def lift_of(config: IndexConfig, arrays: dict, num_leaves: int) -> NormLift | None:
    """The NormLift saved with an augment_norms index (checked: the arrays may come from a
    file), or None for other indexes."""
    if config.tree is None or not config.tree.augment_norms:
        return None
    if "centroid_lift" not in arrays or "norm_bound" not in arrays:
        raise ValueError("an augment_norms index needs the arrays centroid_lift and norm_bound")
    centroid_lift = np.asarray(arrays["centroid_lift"])
    bound = np.asarray(arrays["norm_bound"])
    if centroid_lift.shape != (num_leaves,) or centroid_lift.dtype != np.float32 or bound.shape != (1,) \
            or not np.isfinite(centroid_lift).all() or not np.isfinite(bound).all() or bound[0] < 0:
        raise ValueError(f"centroid_lift must be finite float32 [{num_leaves}] and norm_bound one finite "
                         "number >= 0")
    return NormLift(float(bound[0]), np.ascontiguousarray(centroid_lift))
