"""Keeping a changing quantized index healthy: what health() reports and what
rebalance() reads back.

Points added by upsert() are placed with the centers and codebooks trained at
build time (placement.py). When many points came later, or the data drifted,
the leaves grow uneven and the codebooks fit the new points worse: health()
says so, and rebalance() retrains both on the points held now (read back from
the reorder copy).
"""
from __future__ import annotations

import numpy as np

from ..dense_layout import widen
from .layout import leaf_balance

# rebalance() is recommended when this share of the points came after training,
# or when the leaves' spread (coefficient of variation) grew by this factor.
REBALANCE_ADDED_SHARE = 0.3
REBALANCE_CV_GROWTH = 1.5


def health_report(stats: dict, baseline_cv: float | None) -> dict:
    size = int(stats["size"])
    report = {"size": size, "deleted_pending_compaction": int(stats["rows"]) - size,
              "added_since_training": int(stats["added"]),
              "added_fraction": float(stats["added"]) / size if size else 0.0,
              "num_leaves": int(len(stats["leaf_live"])), "points_in_leaves": int(np.sum(stats["leaf_live"])),
              **leaf_balance(stats["leaf_live"]),
              "leaf_size_cv_at_training": baseline_cv}
    drift = baseline_cv is not None and baseline_cv > 0 and report["leaf_size_cv"] > REBALANCE_CV_GROWTH * baseline_cv
    # An index trained on a sample and filled by upsert() (Builder.train) holds only added
    # points by design: there the leaves' spread against the sample's is the signal.
    filled_after_training = size > 0 and int(stats["added"]) >= size
    added = report["added_fraction"] >= REBALANCE_ADDED_SHARE and not filled_after_training
    report["rebalance_recommended"] = bool(added or drift)
    return report


def decode_rows(arrays: dict, dtype: str, n: int, dim: int) -> np.ndarray:
    """The vectors held by the reorder copy, stored in dtype (exact for float32 and for a
    float32 copy held in bfloat16; other bfloat16 and int8 copies give back their rounded
    values)."""
    rows = np.asarray(arrays["rows"]).reshape(n, -1)[:, :dim]
    if dtype != "int8":
        return widen(rows, dtype)
    return widen(rows, dtype, arrays["row_scale"], arrays["row_offset"])
