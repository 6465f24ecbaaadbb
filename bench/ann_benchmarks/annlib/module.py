"""annlib for the ann-benchmarks harness (https://github.com/erikbern/ann-benchmarks).

Copy this folder to ann_benchmarks/algorithms/annlib/ in an ann-benchmarks
checkout; config.yml declares the run groups and Dockerfile installs annlib.

Build arguments (config.yml `args`, after the metric): num_leaves,
dims_per_block, anisotropic threshold (null: plain PQ), soar_lambda (null: no
spilling). Query arguments: leaves_to_search, pre_reorder_num_neighbors.
Angular data is normalised and searched by inner product, which ranks like
cosine; euclidean data by squared L2 (annlib reduces it to inner product
exactly). Single queries run on one thread, batches on every core.
"""
import numpy as np

import annlib

from ..base.module import BaseANN


class Annlib(BaseANN):
    def __init__(self, metric, num_leaves, dims_per_block=2, threshold=None, soar_lambda=None):
        if metric not in ("angular", "euclidean"):
            raise ValueError(f"annlib: unsupported metric {metric!r} (angular or euclidean)")
        self.metric = metric
        self.num_leaves = int(num_leaves)
        self.dims_per_block = int(dims_per_block)
        self.threshold = None if threshold is None or threshold != threshold else float(threshold)  # nan = unset
        self.soar_lambda = None if soar_lambda is None or soar_lambda != soar_lambda else float(soar_lambda)
        self.leaves_to_search = max(1, self.num_leaves // 20)
        self.reorder = 100
        self.searcher = None
        self.res = None
        self.name = self._describe()

    def _describe(self):
        return (f"annlib(leaves={self.num_leaves}, dims_per_block={self.dims_per_block}, "
                f"threshold={self.threshold}, soar_lambda={self.soar_lambda}, "
                f"leaves_to_search={self.leaves_to_search}, reorder={self.reorder})")

    def fit(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        measure = "squared_l2"
        if self.metric == "angular":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.where(norms > 0, norms, 1.0)
            measure = "dot_product"
        num_leaves = min(self.num_leaves, len(X))
        self.searcher = (annlib.builder(X, min(10, len(X)), measure)
                         .tree(num_leaves, min(self.leaves_to_search, num_leaves), soar_lambda=self.soar_lambda)
                         .score_ah(self.dims_per_block, anisotropic_quantization_threshold=self.threshold)
                         .reorder(self.reorder)
                         .build(num_threads=0, progress=False))

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
