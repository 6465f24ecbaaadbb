"""The user-facing builder: stages that read like the algorithm.

    searcher = (annlib.builder(db, num_neighbors=10, distance_measure="dot_product")
                .score_brute_force(recall_target=1.0, dtype="float32")
                .build())

Each stage may be set once; config() returns the frozen, validated
IndexConfig that build() will use.
"""
from __future__ import annotations

from ._validate import check_database, check_distance_measure, check_k, check_num_threads
from .config import BruteForceConfig, IndexConfig
from .searcher import BruteForceSearcher, Searcher


class Builder:
    def __init__(self, database, num_neighbors: int, distance_measure: str):
        self._database = check_database(database)
        self._num_neighbors = check_k(num_neighbors, self._database.shape[0])
        self._distance_measure = check_distance_measure(distance_measure)
        self._brute_force: BruteForceConfig | None = None

    def score_brute_force(self, recall_target: float = 1.0, dtype: str = "float32") -> "Builder":
        """Score every point. recall_target < 1 keeps the best of L strided bins
        (L = ceil((k-1)/-ln(recall_target))); dtype is float32, bfloat16 or int8."""
        if self._brute_force is not None:
            raise ValueError("score_brute_force() was already called on this builder")
        self._brute_force = BruteForceConfig(recall_target=float(recall_target), dtype=dtype)
        return self

    def config(self) -> IndexConfig:
        return IndexConfig(num_neighbors=self._num_neighbors, distance_measure=self._distance_measure,
                           brute_force=self._brute_force)

    def build(self, num_threads: int = 0) -> Searcher:
        config = self.config()
        num_threads = check_num_threads(num_threads)
        return BruteForceSearcher.build(config, self._database, num_threads)


def builder(database, num_neighbors: int, distance_measure: str) -> Builder:
    """Starts building an index over database (n, d) for num_neighbors results
    under distance_measure ("dot_product", "squared_l2" or "cosine")."""
    return Builder(database, num_neighbors, distance_measure)
