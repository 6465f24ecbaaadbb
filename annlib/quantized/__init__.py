"""The quantized partitioning index (the ScaNN pipeline), by lifecycle:

    training     k-means leaves and AH codebooks, on samples
    soar_choice  whether SOAR spilling pays on the data (soar_lambda="auto")
    placement    where a point goes and what its copies hold: the one rule of
                 build, upsert and rebalance
    layout       the saved arrays: leaf-major slots, packed codes, centroids
    building     training + placement + layout: a new index's arrays
    maintenance  health() and what rebalance() reads back
    searching    QuantizedSearcher over the engine's index object
"""
from __future__ import annotations

import numpy as np

from .. import _core
from ..config import IndexConfig
from .building import build_arrays, trained_arrays
from .searching import QuantizedSearcher


def build_quantized(config: IndexConfig, database: np.ndarray, num_threads: int = 0, progress: bool | None = None,
                    ids: np.ndarray | None = None) -> QuantizedSearcher:
    """Builds a quantized index over database (float32 [n, d], checked)."""
    config, arrays = build_arrays(config, database, num_threads, progress, ids)
    return QuantizedSearcher(config, arrays, format_version=_core.FORMAT_VERSION)


def train_quantized(config: IndexConfig, sample: np.ndarray, num_threads: int = 0,
                    progress: bool | None = None) -> QuantizedSearcher:
    """An empty quantized index trained on sample (float32 [n, d], checked), for upsert()."""
    config, arrays = trained_arrays(config, sample, num_threads, progress)
    return QuantizedSearcher(config, arrays, format_version=_core.FORMAT_VERSION)


__all__ = ["QuantizedSearcher", "build_arrays", "build_quantized", "train_quantized"]
