"""Frozen, validated index configuration with a JSON round trip.

An IndexConfig describes what the builder was asked for; it is stored as
config.json next to a saved index and is enough, together with the saved
arrays, to rebuild the searcher object.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from ._validate import check_distance_measure

DENSE_DTYPES = ("float32", "bfloat16", "int8")


@dataclass(frozen=True)
class BruteForceConfig:
    """Exact or binned (TPU-KNN) scoring of every database point.

    recall_target: 1.0 = exact top-k; below 1, the best of L strided bins
        survive, L = ceil((k-1)/-ln(recall_target)).
    dtype: storage and arithmetic of the database copy: float32, bfloat16 or
        int8 (per-point scale; queries are quantised per query).
    """

    recall_target: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.recall_target, (int, float)) or not 0.0 < float(self.recall_target) <= 1.0:
            raise ValueError(f"recall_target must be in (0, 1], got {self.recall_target!r}")
        if self.dtype not in DENSE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DENSE_DTYPES)}; got {self.dtype!r}")


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


MAX_INT32 = 2**31 - 1  # counts reach the C++ core as int32


def _positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT32:
        raise ValueError(f"{name} must be a positive integer (at most {MAX_INT32}), got {value!r}")


@dataclass(frozen=True)
class TreeConfig:
    """k-means partitioning into leaves; a query visits its best leaves.

    num_leaves: leaves (about sqrt(n) to 2 sqrt(n) is typical).
    num_leaves_to_search: leaves scored per query by default (per-call override).
    training_sample_size: points k-means trains on (default 100,000, as ScaNN).
    spherical: unit-norm centers (useful for dot product on normalised data).
    iterations: Lloyd iterations (default 12, as ScaNN).
    init: "random" (ScaNN's default) or "kmeans++".
    seed: random seed of sampling and initialisation.
    soar_lambda: None = each point in one leaf; a number >= 0 = SOAR spilling:
        each point is also stored in argmin_c |x-c|^2 + lambda <x-c, r^>^2
        (r^ = its unit primary residual). 1.0 is a good start (measured in
        the README); for squared L2 too, through the L2 -> MIPS reduction.
        "auto": the build decides from the data, once its leaves are trained,
        whether spilling (lambda 1.5) saves scanning (quantized/soar_choice.py);
        the built index's config holds the decision (1.5 or None).
    overretrieve_factor: accepted for ScaNN's configs and older saved indexes;
        no effect. (It was the AH candidates gathered per wanted one before
        duplicates were dropped; the scan now keeps distinct points, which
        returns what a factor of 2 did.)
    augment_norms: dot product on vectors whose norms vary: k-means and the
        points' leaves on [x, sqrt(M^2 - |x|^2)] (M: the largest norm), the
        reduction of maximum inner product to nearest neighbour; queries probe
        the leaves by <q, c> as before.
    """

    num_leaves: int
    num_leaves_to_search: int
    training_sample_size: int = 100_000
    spherical: bool = False
    iterations: int = 12
    init: str = "random"
    seed: int = 0
    soar_lambda: float | str | None = None  # str: "auto" only, until a build decides
    overretrieve_factor: float = 2.0
    augment_norms: bool = False

    def __post_init__(self):
        for name in ("num_leaves", "num_leaves_to_search", "training_sample_size", "iterations"):
            _positive_int(getattr(self, name), name)
        if self.num_leaves_to_search > self.num_leaves:
            raise ValueError(f"num_leaves_to_search ({self.num_leaves_to_search}) must be <= num_leaves "
                             f"({self.num_leaves})")
        for name in ("spherical", "augment_norms"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.spherical and self.augment_norms:
            raise ValueError("spherical and augment_norms are two ways to partition: choose one")
        if self.init not in ("random", "kmeans++"):
            raise ValueError(f"init must be 'random' or 'kmeans++', got {self.init!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        lam = self.soar_lambda
        if lam is not None and lam != "auto" and not (_is_number(lam) and lam >= 0):
            raise ValueError(f"soar_lambda must be None, a finite number >= 0 or 'auto', got {lam!r}")
        f = self.overretrieve_factor
        if not (_is_number(f) and 1.0 <= f <= 100.0):
            raise ValueError(f"overretrieve_factor must be a number in [1, 100], got {f!r}")


@dataclass(frozen=True)
class AhConfig:
    """Asymmetric hashing: 4-bit product quantization of residuals, LUT16 scan.

    dimensions_per_block: dims per 16-center block (2 = ScaNN's default; 3-4
        pay off at d >= 384). Must divide the data's dimension.
    anisotropic_quantization_threshold: T of the score-aware loss in the
        data's units (eta = (d-1) t^2 / (1-t^2), t = T/||x||); None = plain PQ.
        ScaNN uses 0.2 on unit-norm GloVe-100; use less at higher d.
    training_sample_size: residuals the codebooks are trained on (100,000).
    training_iterations: Lloyd iterations of the per-block codebooks (10).
    encoding_rounds: coordinate-descent rounds of the anisotropic encoder (10).
    """

    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float | None = None
    training_sample_size: int = 100_000
    training_iterations: int = 10
    encoding_rounds: int = 10

    def __post_init__(self):
        for name in ("dimensions_per_block", "training_sample_size", "training_iterations"):
            _positive_int(getattr(self, name), name)
        if isinstance(self.encoding_rounds, bool) or not isinstance(self.encoding_rounds, int) or self.encoding_rounds < 0:
            raise ValueError(f"encoding_rounds must be a non-negative integer, got {self.encoding_rounds!r}")
        t = self.anisotropic_quantization_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0):
            raise ValueError(f"anisotropic_quantization_threshold must be a positive number or None, got {t!r}")


@dataclass(frozen=True)
class ReorderConfig:
    """Exact rescoring of the best AH candidates.

    pre_reorder_num_neighbors: AH candidates rescored (>= num_neighbors).
    dtype: the copy rescored from: float32 (exact), bfloat16 or int8.
    """

    pre_reorder_num_neighbors: int
    dtype: str = "float32"

    def __post_init__(self):
        _positive_int(self.pre_reorder_num_neighbors, "pre_reorder_num_neighbors")
        if self.dtype not in DENSE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DENSE_DTYPES)}; got {self.dtype!r}")


_STAGES = {"brute_force": BruteForceConfig, "tree": TreeConfig, "score_ah": AhConfig, "reorder": ReorderConfig}


@dataclass(frozen=True)
class IndexConfig:
    num_neighbors: int
    distance_measure: str
    brute_force: BruteForceConfig | None = None
    tree: TreeConfig | None = None
    score_ah: AhConfig | None = None
    reorder: ReorderConfig | None = None

    def __post_init__(self):
        _positive_int(self.num_neighbors, "num_neighbors")
        # Aliases ("euclidean", "angular", ...) are stored by their canonical name.
        object.__setattr__(self, "distance_measure", check_distance_measure(self.distance_measure))
        if self.brute_force is None and self.score_ah is None:
            raise ValueError("no scoring stage configured: call score_brute_force() or score_ah() on the builder")
        if self.brute_force is not None and (self.score_ah or self.tree or self.reorder):
            raise ValueError("score_brute_force() scores every point exactly; it cannot be combined with "
                             "tree(), score_ah() or reorder()")
        if self.reorder is not None and self.score_ah is None:
            raise ValueError("reorder() rescores AH candidates: it needs score_ah()")
        if self.tree is not None and self.tree.augment_norms and self.distance_measure != "dot_product":
            raise ValueError("augment_norms applies to dot_product (squared_l2 and cosine rank by distance "
                             "already)")
        if self.tree is not None and self.score_ah is None:
            raise ValueError("tree() needs a scoring stage for the leaves: call score_ah()")
        if self.reorder is not None and self.reorder.pre_reorder_num_neighbors < self.num_neighbors:
            raise ValueError(f"pre_reorder_num_neighbors ({self.reorder.pre_reorder_num_neighbors}) must be >= "
                             f"num_neighbors ({self.num_neighbors})")

    @property
    def kind(self) -> str:
        return "brute_force" if self.brute_force is not None else "quantized"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexConfig":
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        data.pop("kind", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        for stage, stage_cls in _STAGES.items():
            if data.get(stage) is not None:
                if not isinstance(data[stage], dict):
                    raise ValueError(f"bad {stage} config: expected an object, got {data[stage]!r}")
                try:
                    data[stage] = stage_cls(**data[stage])
                except TypeError as e:
                    raise ValueError(f"bad {stage} config: {e}") from None
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "IndexConfig":
        return cls.from_dict(json.loads(text))
