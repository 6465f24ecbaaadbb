"""annlib and its peers behind one interface, shaped like ann-benchmarks' BaseANN.

Every wrapper is built for one distance measure ("dot_product" on unit
vectors for angular data, "squared_l2" for euclidean data), with `threads`
threads for builds and batches. `query` answers one query on one thread (the
latency-bound caller); `batch_query` answers a batch on `threads` threads.
Both return int64 ids. `index_bytes` is what the index occupies as its library
serialises it (annlib: its arrays), a figure that does not depend on the
allocator the way a resident-set delta does.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np


class Algorithm:
    """fit(train) once, then set_query_arguments(...) and query / batch_query."""

    def __init__(self, measure: str, threads: int, **build_args):
        self.measure = measure
        self.threads = threads
        self.build_args = build_args
        self.query_args: dict = {}

    def fit(self, train: np.ndarray) -> None:
        raise NotImplementedError

    def set_query_arguments(self, **query_args) -> None:
        self.query_args = query_args

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def index_bytes(self) -> int:
        raise NotImplementedError


def _saved_bytes(save) -> int:
    """Bytes written when `save(directory)` serialises an index into a temporary directory."""
    tmp = tempfile.mkdtemp(prefix="annlib-bench-")
    try:
        save(tmp)
        return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(tmp) for f in files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Annlib(Algorithm):
    """annlib's quantized partitioning index: tree (optionally SOAR) + AH + reorder.
    Build args: num_leaves, dims_per_block, threshold, soar_lambda, reorder_dtype,
    spherical and augment_norms (default: annlib.defaults' choice for the data).
    Query args: leaves, reorder."""

    def fit(self, train):
        import annlib
        from annlib import defaults

        a = self.build_args
        num_leaves = a["num_leaves"]
        spherical, augment = defaults.partitioning_for(self.measure, defaults.norm_cv(train))
        self.searcher = (annlib.builder(train, 10, self.measure)
                         .tree(num_leaves, max(1, num_leaves // 20), soar_lambda=a.get("soar_lambda"),
                               spherical=a.get("spherical", spherical), augment_norms=a.get("augment_norms", augment))
                         .score_ah(a.get("dims_per_block", 2),
                                   anisotropic_quantization_threshold=a.get("threshold"))
                         .reorder(100, dtype=a.get("reorder_dtype", "float32"))
                         .build(num_threads=self.threads, progress=False))

    def _knobs(self):
        return {"leaves_to_search": self.query_args["leaves"],
                "pre_reorder_num_neighbors": self.query_args["reorder"]}

    def query(self, q, k):
        return self.searcher.search(q, final_num_neighbors=k, **self._knobs())[0]

    def batch_query(self, queries, k):
        return self.searcher.search_batched(queries, final_num_neighbors=k, num_threads=self.threads,
                                            **self._knobs())[0]

    def index_bytes(self):
        return sum(a.nbytes for a in self.searcher._arrays().values())


class BruteForce(Algorithm):
    """annlib's exact brute force (float32): the recall-1.0 reference point."""

    def fit(self, train):
        import annlib

        self.searcher = annlib.builder(train, 10, self.measure).score_brute_force().build(num_threads=self.threads)

    def query(self, q, k):
        return self.searcher.search(q, final_num_neighbors=k)[0]

    def batch_query(self, queries, k):
        return self.searcher.search_batched(queries, final_num_neighbors=k, num_threads=self.threads)[0]

    def index_bytes(self):
        return sum(a.nbytes for a in self.searcher._arrays().values())


class Scann(Algorithm):
    """Google's ScaNN with the same pipeline. Build args: num_leaves, threshold,
    soar_lambda (dot product only, as ScaNN allows), spherical (k-means on the unit
    sphere; ScaNN's default: off), reorder_dtype (float32, bfloat16 or int8: the reorder
    copy's type, ScaNN's ReorderType; default float32). Query args: leaves, reorder."""

    def fit(self, train):
        import scann

        a = self.build_args
        builder = scann.scann_ops_pybind.builder(train, 10, self.measure).tree(
            num_leaves=a["num_leaves"], num_leaves_to_search=max(1, a["num_leaves"] // 20),
            training_sample_size=min(len(train), 100_000), soar_lambda=a.get("soar_lambda"),
            spherical=bool(a.get("spherical", False)))
        threshold = a.get("threshold")
        builder = (builder.score_ah(2, anisotropic_quantization_threshold=threshold) if threshold
                   else builder.score_ah(2))
        reorder_types = {"float32": scann.ReorderType.FLOAT32, "bfloat16": scann.ReorderType.BFLOAT16,
                         "int8": scann.ReorderType.INT8}
        self.searcher = builder.reorder(100, quantize=reorder_types[a.get("reorder_dtype", "float32")]).build()
        self.searcher.set_num_threads(self.threads)

    def _knobs(self):
        return {"leaves_to_search": self.query_args["leaves"],
                "pre_reorder_num_neighbors": self.query_args["reorder"]}

    def query(self, q, k):
        return self.searcher.search(q, final_num_neighbors=k, **self._knobs())[0].astype(np.int64)

    def batch_query(self, queries, k):
        return self.searcher.search_batched_parallel(queries, final_num_neighbors=k,
                                                     **self._knobs())[0].astype(np.int64)

    def index_bytes(self):
        return _saved_bytes(self.searcher.serialize)


class _Faiss(Algorithm):
    """Shared FAISS plumbing: OpenMP threads are set per call (1 for single queries)."""

    factory = ""

    def fit(self, train):
        import faiss

        self.faiss = faiss
        metric = faiss.METRIC_L2 if self.measure == "squared_l2" else faiss.METRIC_INNER_PRODUCT
        faiss.omp_set_num_threads(self.threads)
        self.index = faiss.index_factory(train.shape[1], self.factory_string(train.shape[1]), metric)
        self.configure_build()
        self.index.train(train)
        self.index.add(train)

    def factory_string(self, d: int) -> str:
        raise NotImplementedError

    def configure_build(self):
        pass

    def query(self, q, k):
        self.faiss.omp_set_num_threads(1)
        return self.index.search(q[None, :], k)[1][0]

    def batch_query(self, queries, k):
        self.faiss.omp_set_num_threads(self.threads)
        return self.index.search(queries, k)[1]

    def index_bytes(self):
        return len(self.faiss.serialize_index(self.index))


class FaissIvfPqFastScan(_Faiss):
    """FAISS IVF + 4-bit PQ fast scan (2 dims per code, like LUT16) + exact refine.
    Build args: nlist. Query args: nprobe, reorder (k_factor = reorder / k)."""

    def factory_string(self, d):
        return f"IVF{self.build_args['nlist']},PQ{d // 2}x4fs,RFlat"

    def set_query_arguments(self, **query_args):
        super().set_query_arguments(**query_args)
        self.faiss.extract_index_ivf(self.index).nprobe = query_args["nprobe"]
        self.reorder = query_args["reorder"]

    def query(self, q, k):
        self.index.k_factor = max(1.0, self.reorder / k)
        return super().query(q, k)

    def batch_query(self, queries, k):
        self.index.k_factor = max(1.0, self.reorder / k)
        return super().batch_query(queries, k)


class FaissHnsw(_Faiss):
    """FAISS HNSW over full vectors. Build args: M, ef_construction. Query args: ef."""

    def factory_string(self, d):
        return f"HNSW{self.build_args['M']},Flat"

    def configure_build(self):
        self.index.hnsw.efConstruction = self.build_args["ef_construction"]

    def set_query_arguments(self, **query_args):
        super().set_query_arguments(**query_args)
        self.index.hnsw.efSearch = query_args["ef"]


class Hnswlib(Algorithm):
    """hnswlib. Build args: M, ef_construction. Query args: ef."""

    def fit(self, train):
        import hnswlib

        self.index = hnswlib.Index(space="l2" if self.measure == "squared_l2" else "ip", dim=train.shape[1])
        self.index.init_index(max_elements=len(train), ef_construction=self.build_args["ef_construction"],
                              M=self.build_args["M"])
        self.index.add_items(train, num_threads=self.threads)

    def set_query_arguments(self, **query_args):
        super().set_query_arguments(**query_args)
        self.ef = query_args["ef"]

    def query(self, q, k):
        self.index.set_ef(max(self.ef, k))
        return self.index.knn_query(q, k, num_threads=1)[0][0].astype(np.int64)

    def batch_query(self, queries, k):
        self.index.set_ef(max(self.ef, k))
        return self.index.knn_query(queries, k, num_threads=self.threads)[0].astype(np.int64)

    def index_bytes(self):
        return _saved_bytes(lambda tmp: self.index.save_index(os.path.join(tmp, "index.bin")))


# family name -> (wrapper class, the Python module it needs)
FAMILIES = {
    "annlib": (Annlib, "annlib"),
    "bruteforce": (BruteForce, "annlib"),
    "scann": (Scann, "scann"),
    "faiss-ivfpqfs": (FaissIvfPqFastScan, "faiss"),
    "faiss-hnsw": (FaissHnsw, "faiss"),
    "hnswlib": (Hnswlib, "hnswlib"),
}


def missing_module(family: str) -> str | None:
    """The module a family needs when it is not installed, else None."""
    import importlib.util

    module = FAMILIES[family][1]
    return None if importlib.util.find_spec(module) is not None else module
