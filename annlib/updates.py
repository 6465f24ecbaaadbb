"""Live updates of a quantized index: what upsert() prepares before the C++
store takes the points (csrc/search/partitioned_store.h), and what health()
and rebalance() read back.

A new point is placed exactly as a build would have placed it, with the
index's own centers and codebooks: its nearest leaf, with SOAR one more leaf
chosen by the spill loss, AH codes of its residual in each, the L2 point term
for squared L2, and a reorder row. Only the centers and codebooks stay
as trained: when many points have been added (or the data drifted), the
leaves grow uneven and health() says so; rebalance() retrains both.
"""
from __future__ import annotations

import numpy as np

from . import _core, ah
from .partitioning import assign


def check_ids(ids, name: str = "ids") -> np.ndarray:
    """ids as a 1-D int64 array of unique non-negative integers."""
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integers, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0 (-1 marks padding in results), got {int(arr.min())}")
    unique, counts = np.unique(arr, return_counts=True)
    if len(unique) != len(arr):
        raise ValueError(f"{name} holds id {int(unique[counts > 1][0])} more than once; each id once per call")
    return arr


def prepare_points(config, arrays: dict, num_blocks: int, x: np.ndarray, num_threads: int) -> dict:
    """The scorer's upsert arguments for vectors x (validated, normalised for cosine) into
    the index of these config and arrays."""
    ahc = config.score_ah
    centroids = np.asarray(arrays["centroids"])
    labels = assign(x, centroids, num_threads=num_threads)[0]
    codebooks = np.ascontiguousarray(
        np.asarray(arrays["lut_centers"]).reshape(num_blocks, -1, 16).transpose(0, 2, 1))

    def encode(leaves):
        return ah.encode(np.ascontiguousarray(x - centroids[leaves]), x, codebooks,
                         threshold=ahc.anisotropic_quantization_threshold, eta_dim=x.shape[1],
                         rounds=ahc.encoding_rounds, num_threads=num_threads)

    squared_l2 = config.distance_measure == "squared_l2"

    def slot_bias(leaves, codes):
        return ah.l2_point_term(centroids, leaves, codes, codebooks) if squared_l2 else None

    codes0 = encode(labels)
    out = dict(leaf0=labels.astype(np.int32), codes0=codes0, bias0=slot_bias(labels, codes0),
               leaf1=None, codes1=None, bias1=None, rows=None)
    tree = config.tree
    if tree is not None and tree.soar_lambda is not None:
        secondary = _core.soar_assign(x, centroids, np.ascontiguousarray(labels, dtype=np.int64),
                                      float(tree.soar_lambda), num_threads)
        spilled = np.flatnonzero(secondary != labels)
        codes1 = np.zeros_like(out["codes0"])
        if len(spilled):
            codes1[spilled] = ah.encode(np.ascontiguousarray(x[spilled] - centroids[secondary[spilled]]),
                                        np.ascontiguousarray(x[spilled]), codebooks,
                                        threshold=ahc.anisotropic_quantization_threshold, eta_dim=x.shape[1],
                                        rounds=ahc.encoding_rounds, num_threads=num_threads)
        out.update(leaf1=np.ascontiguousarray(secondary, dtype=np.int32), codes1=codes1,
                   bias1=slot_bias(secondary.astype(np.int64), codes1))
    if config.reorder is not None:
        out["rows"] = _core.pack_rows(x, config.reorder.dtype, squared_l2, num_threads)
    return out


def decode_rows(arrays: dict, dtype: str, n: int, dim: int) -> np.ndarray:
    """The vectors held by the reorder copy (exact for float32; bfloat16 and
    int8 give back their rounded values)."""
    rows = np.asarray(arrays["rows"]).reshape(n, -1)[:, :dim]
    if dtype == "float32":
        return np.ascontiguousarray(rows, dtype=np.float32)
    if dtype == "bfloat16":
        return (rows.astype(np.uint32) << 16).view(np.float32)
    scale = np.asarray(arrays["row_scale"])[:, None]
    offset = np.asarray(arrays["row_offset"])[:, None]
    return (rows.astype(np.float32) * scale + offset).astype(np.float32)


def leaf_balance(leaf_sizes: np.ndarray) -> dict:
    """Imbalance figures of the leaves' live point counts."""
    sizes = np.asarray(leaf_sizes, dtype=np.float64)
    mean = sizes.mean() if len(sizes) else 0.0
    return {"leaf_size_max_over_mean": float(sizes.max() / mean) if mean > 0 else 0.0,
            "leaf_size_cv": float(sizes.std() / mean) if mean > 0 else 0.0,
            "empty_leaves": int((sizes == 0).sum())}


# rebalance() is recommended when this share of the points came after training,
# or when the leaves' spread (coefficient of variation) grew by this factor.
REBALANCE_ADDED_SHARE = 0.3
REBALANCE_CV_GROWTH = 1.5


def health_report(stats: dict, baseline_cv: float | None) -> dict:
    size = int(stats["size"])
    report = {"size": size, "deleted_pending_compaction": int(stats["rows"]) - size,
              "added_since_training": int(stats["added"]),
              "added_fraction": float(stats["added"]) / size if size else 0.0,
              "num_leaves": int(len(stats["leaf_live"])), **leaf_balance(stats["leaf_live"]),
              "leaf_size_cv_at_training": baseline_cv}
    drift = baseline_cv is not None and baseline_cv > 0 and report["leaf_size_cv"] > REBALANCE_CV_GROWTH * baseline_cv
    report["rebalance_recommended"] = bool(report["added_fraction"] >= REBALANCE_ADDED_SHARE or drift)
    return report
