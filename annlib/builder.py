"""The user-facing builder: stages that read like the algorithm.

    searcher = (annlib.builder(db, num_neighbors=10, distance_measure="dot_product")
                .tree(num_leaves=400, num_leaves_to_search=40)
                .score_ah(dimensions_per_block=2, anisotropic_quantization_threshold=0.2)
                .reorder(pre_reorder_num_neighbors=100)
                .build())

or .score_brute_force(recall_target=1.0, dtype="float32") for exact scoring.
Each stage may be set once; incompatible stages raise ValueError; config()
returns the frozen, validated IndexConfig that build() will use.
"""
from __future__ import annotations

from ._validate import check_database, check_distance_measure, check_ids, check_k, check_num_threads
from .config import MAX_INT32, AhConfig, BruteForceConfig, IndexConfig, ReorderConfig, TreeConfig
from .quantized import build_quantized, train_quantized
from .searcher import BruteForceSearcher, Searcher

# autopilot() builds, then tunes: the tuning layer (above this one) registers the
# function that does it when it is imported (annlib.tuning.autopilot), so the
# builder never imports the layer above it.
_autopilot_build = None


def register_autopilot(build) -> None:
    """build(builder, options, num_threads, progress) -> Searcher, for Builder.autopilot()."""
    global _autopilot_build
    _autopilot_build = build


class Builder:
    def __init__(self, database, num_neighbors: int, distance_measure: str, ids=None):
        # Zero rows start an index that upsert() fills; its k is checked at search time.
        self._database = check_database(database, allow_empty=True)
        n = self._database.shape[0]
        self._num_neighbors = check_k(num_neighbors, n if n else MAX_INT32)
        self._distance_measure = check_distance_measure(distance_measure)
        self._ids = None
        if ids is not None:
            self._ids = check_ids(ids)
            if len(self._ids) != len(self._database):
                raise ValueError(f"ids has {len(self._ids)} entries but the database has {len(self._database)} rows")
        self._stages: dict = {}
        self._autopilot: dict | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(n, d) of the database."""
        return self._database.shape

    @property
    def num_neighbors(self) -> int:
        return self._num_neighbors

    @property
    def distance_measure(self) -> str:
        return self._distance_measure

    def _set(self, name: str, stage) -> "Builder":
        if self._autopilot is not None:
            raise ValueError(f"autopilot() chooses every stage itself; do not add {name}()")
        if name in self._stages:
            raise ValueError(f"{name}() was already called on this builder")
        stages = dict(self._stages, **{name: stage})
        # Incompatible stages fail at the call that combines them; a missing
        # scoring stage is only an error when the config is asked for.
        probe = stages if "brute_force" in stages or "score_ah" in stages else dict(stages, score_ah=AhConfig())
        IndexConfig(num_neighbors=self._num_neighbors, distance_measure=self._distance_measure, **probe)
        self._stages = stages
        return self

    def score_brute_force(self, recall_target: float = 1.0, dtype: str = "float32") -> "Builder":
        """Score every point. recall_target < 1 keeps the best of L strided bins
        (L = ceil((k-1)/-ln(recall_target))); dtype is float32, bfloat16 or int8."""
        return self._set("brute_force", BruteForceConfig(recall_target=float(recall_target), dtype=dtype))

    def tree(self, num_leaves: int, num_leaves_to_search: int, training_sample_size: int = 100_000,
             spherical: bool = False, iterations: int = 12, init: str = "random", seed: int = 0,
             soar_lambda: float | str | None = None, overretrieve_factor: float = 2.0,
             augment_norms: bool = False) -> "Builder":
        """Partition into num_leaves k-means leaves; queries visit num_leaves_to_search
        of them. soar_lambda spills every point into one more leaf (SOAR; "auto": only if
        a test on the trained leaves says it saves scanning); spherical
        (unit-norm data) or augment_norms (dot product, norms that vary) partition by
        the score; see TreeConfig for the defaults."""
        n = self._database.shape[0]
        if isinstance(num_leaves, int) and not isinstance(num_leaves, bool) and num_leaves > n:
            raise ValueError(f"num_leaves ({num_leaves}) must be <= the number of points ({n})")
        return self._set("tree", TreeConfig(num_leaves, num_leaves_to_search, training_sample_size, spherical,
                                            iterations, init, seed, soar_lambda, overretrieve_factor,
                                            augment_norms))

    def score_ah(self, dimensions_per_block: int = 2, anisotropic_quantization_threshold: float | None = None,
                 training_sample_size: int = 100_000, training_iterations: int = 10,
                 encoding_rounds: int = 10) -> "Builder":
        """Score leaves' points by 4-bit product quantization (16 centers per block of
        dimensions_per_block dims), anisotropic when a threshold is given (see AhConfig)."""
        cfg = AhConfig(dimensions_per_block, anisotropic_quantization_threshold, training_sample_size,
                       training_iterations, encoding_rounds)
        d = self._database.shape[1]
        if d % cfg.dimensions_per_block:
            raise ValueError(f"dimensions_per_block ({cfg.dimensions_per_block}) must divide the dimension ({d})")
        return self._set("score_ah", cfg)

    def reorder(self, pre_reorder_num_neighbors: int, dtype: str = "float32") -> "Builder":
        """Rescore the best pre_reorder_num_neighbors AH candidates exactly from a
        float32, bfloat16 or int8 copy of the data."""
        return self._set("reorder", ReorderConfig(pre_reorder_num_neighbors, dtype))

    def autopilot(self, target_recall: float | None = None, max_latency_us: float | None = None, *,
                  queries=None, ground_truth=None, exact_scores: bool = True,
                  recall_tolerance: float = 0.0) -> "Builder":
        """Let annlib choose: build() picks the stages from the data's size, dimension and metric
        (rules in annlib.defaults), builds, then tunes the search settings for exactly
        one of target_recall or max_latency_us (annlib.tune, with `queries` or a database
        sample); the result is in searcher.tune_result. Replaces every other stage.
        exact_scores=False lets it re-rank from an int8 or bfloat16 copy instead of float32
        where that changes at most 0.1% of the tuned results (a quarter or half the bytes
        read: faster at large k, smaller); the scores are then that copy's, not exact.
        recall_tolerance: as annlib.tune's (near-ties at the k-th place count as found)."""
        if self._stages:
            raise ValueError("autopilot() chooses every stage itself; do not combine it with "
                             f"{', '.join(self._stages)}()")
        if (target_recall is None) == (max_latency_us is None):
            raise ValueError("give exactly one of target_recall or max_latency_us")
        if not isinstance(exact_scores, bool):
            raise TypeError(f"exact_scores must be True or False, got {exact_scores!r}")
        self._autopilot = dict(target_recall=target_recall, max_latency_us=max_latency_us, queries=queries,
                               ground_truth=ground_truth, exact_scores=exact_scores,
                               recall_tolerance=recall_tolerance)
        return self

    def config(self) -> IndexConfig:
        return IndexConfig(num_neighbors=self._num_neighbors, distance_measure=self._distance_measure,
                           **self._stages)

    def build(self, num_threads: int = 0, progress: bool | None = None) -> Searcher:
        """Builds the index; num_threads=0 uses all cores; progress shows tqdm bars (None:
        on a terminal or in a notebook)."""
        num_threads = check_num_threads(num_threads)
        if self._autopilot is not None:
            if _autopilot_build is None:
                raise RuntimeError("autopilot needs annlib.tuning; import annlib to register it")
            staged = Builder(self._database, self._num_neighbors, self._distance_measure, ids=self._ids)
            return _autopilot_build(staged, self._autopilot, num_threads, progress)
        config = self.config()
        if config.kind == "brute_force":
            return BruteForceSearcher.build(config, self._database, num_threads, ids=self._ids)
        if len(self._database) == 0:
            raise ValueError("a quantized index learns its leaves and codebooks from data: build it from "
                             "vectors, or train() it on a sample and upsert() the rest")
        return build_quantized(config, self._database, num_threads, progress, ids=self._ids)

    def train(self, num_threads: int = 0, progress: bool | None = None) -> Searcher:
        """An empty index, trained on this builder's vectors (a sample of the data), for
        upsert() to fill: FAISS's train/add split. A quantized index learns its leaves
        and AH codebooks here and places every upserted point as a build would; brute
        force has nothing to learn. For data larger than memory, upsert it in chunks from
        a memory-mapped file (annlib.datasets.read_fvecs(path, mmap=True))."""
        num_threads = check_num_threads(num_threads)
        if self._autopilot is not None:
            raise ValueError("autopilot() tunes a built index; build() it instead of train()")
        if self._ids is not None:
            raise ValueError("train() adds none of the builder's rows, so it takes no ids: pass them to upsert()")
        config = self.config()
        if config.kind == "brute_force":
            return BruteForceSearcher.build(config, self._database[:0], num_threads)
        if len(self._database) == 0:
            raise ValueError("train() needs a sample of the data to learn from; this builder has no vectors")
        return train_quantized(config, self._database, num_threads, progress)

    @property
    def database(self):
        """The checked database (float32, C-contiguous)."""
        return self._database


def builder(database, num_neighbors: int, distance_measure: str, ids=None) -> Builder:
    """Starts building an index over database (n, d) for num_neighbors results
    under distance_measure ("dot_product", "squared_l2" or "cosine"). ids: the
    int64 id of each row (unique, >= 0; default 0..n-1); results, updates and
    filters speak these ids."""
    return Builder(database, num_neighbors, distance_measure, ids=ids)
