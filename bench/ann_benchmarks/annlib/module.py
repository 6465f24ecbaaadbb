"""annlib for the ann-benchmarks harness (https://github.com/erikbern/ann-benchmarks).

Copy this folder to ann_benchmarks/algorithms/annlib/ in an ann-benchmarks
checkout; config.yml declares the run groups and Dockerfile installs annlib.

Build arguments (config.yml `args`, after the metric): num_leaves,
dims_per_block, anisotropic threshold (null: plain PQ), soar_lambda (null: no
spilling); each omitted one takes annlib's default for the data
(annlib.defaults: about 2*sqrt(n) leaves, 2 dims per block (4 at d >= 256 on
k-means leaves), the threshold on inner-product data, SOAR where the data says
it pays). Query arguments: leaves_to_search,
pre_reorder_num_neighbors. Angular data is normalised and searched by inner
product, which ranks like cosine; euclidean data by squared L2 (annlib reduces
it to inner product exactly). Single queries run on one thread, batches on
every core.
"""
import numpy as np

import annlib
from annlib import defaults

from ..base.module import BaseANN

DEFAULT = "default"  # an argument left to annlib.defaults


class Annlib(BaseANN):
    def __init__(self, metric, num_leaves=DEFAULT, dims_per_block=DEFAULT, threshold=DEFAULT, soar_lambda=DEFAULT):
        if metric not in ("angular", "euclidean"):
            raise ValueError(f"annlib: unsupported metric {metric!r} (angular or euclidean)")
        self.metric = metric
        self.measure = "dot_product" if metric == "angular" else "squared_l2"
        self.num_leaves = num_leaves if num_leaves == DEFAULT else int(num_leaves)
        self.dims_per_block = dims_per_block if dims_per_block == DEFAULT else int(dims_per_block)
        self.threshold = self._optional(threshold)
        self.soar_lambda = self._optional(soar_lambda)
        self.leaves_to_search = 1 if self.num_leaves == DEFAULT else max(1, self.num_leaves // 20)
        self.reorder = 100
        self.searcher = None
        self.res = None
        self.name = self._describe()

    @staticmethod
    def _optional(value):
        if value == DEFAULT:
            return DEFAULT
        return None if value is None or value != value else float(value)  # null or nan: unset

    def _describe(self):
        return (f"annlib(leaves={self.num_leaves}, dims_per_block={self.dims_per_block}, "
                f"threshold={self.threshold}, soar_lambda={self.soar_lambda}, "
                f"leaves_to_search={self.leaves_to_search}, reorder={self.reorder})")

    def fit(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.metric == "angular":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.where(norms > 0, norms, 1.0)
        n, d = X.shape
        if self.num_leaves == DEFAULT:
            self.num_leaves = defaults.num_leaves_for(n)
        mean_norm, cv = defaults.norm_stats(X)
        spherical, augment_norms = defaults.partitioning_for(self.measure, cv)
        if self.dims_per_block == DEFAULT:
            self.dims_per_block = defaults.dims_per_block_for(d, spherical=spherical)
        if self.threshold == DEFAULT:
            self.threshold = defaults.threshold_for(d, self.measure, norm_scale=mean_norm)
        if self.soar_lambda == DEFAULT:
            self.soar_lambda = "auto"  # the build decides from the data (annlib/quantized/soar_choice.py)
        num_leaves = min(self.num_leaves, n)
        self.searcher = (annlib.builder(X, min(10, n), self.measure)
                         .tree(num_leaves, min(self.leaves_to_search, num_leaves), soar_lambda=self.soar_lambda,
                               spherical=spherical, augment_norms=augment_norms)
                         .score_ah(self.dims_per_block, anisotropic_quantization_threshold=self.threshold)
                         .reorder(self.reorder)
                         .build(num_threads=0, progress=False))
        self.soar_lambda = self.searcher.config.tree.soar_lambda  # as decided
        self.name = self._describe()

    def set_query_arguments(self, leaves_to_search, reorder):
        self.leaves_to_search = int(leaves_to_search)
        self.reorder = int(reorder)
        self.name = self._describe()

    def _knobs(self, n):
        num_leaves = self.searcher.num_leaves
        n = min(n, self.searcher.size())  # a dataset smaller than n has fewer neighbours to give
        return {"final_num_neighbors": n, "leaves_to_search": min(self.leaves_to_search, num_leaves),
                "pre_reorder_num_neighbors": max(self.reorder, n)}

    # Results are padded with id -1 when fewer than n points were found; the harness would
    # read -1 as the last training row, so only real ids are returned.
    def query(self, v, n):
        ids = self.searcher.search(np.asarray(v, dtype=np.float32), **self._knobs(n))[0]
        return ids[ids >= 0]

    def batch_query(self, X, n):
        ids = self.searcher.search_batched(np.asarray(X, dtype=np.float32), num_threads=0, **self._knobs(n))[0]
        self.res = [row[row >= 0] for row in ids]

    def get_batch_results(self):
        return self.res

    def get_additional(self):
        return {"simd_level": annlib.simd_level()}

    def __str__(self):
        return self.name
