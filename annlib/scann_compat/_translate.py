"""ScaNN configs (as parsed from their text) to annlib index configs.

    plan(fields, dim) -> Plan        what annlib builds for a ScaNN config
    resolve_autopilot(fields, n, d)  an autopilot config made concrete for n points
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .. import defaults
from ..config import AhConfig, BruteForceConfig, IndexConfig, ReorderConfig, TreeConfig


class CompatWarning(UserWarning):
    """A ScaNN setting that annlib accepts but does not apply."""


_MEASURES = {"DotProductDistance": "dot_product", "SquaredL2Distance": "squared_l2"}
_NAMES = {v: k for k, v in _MEASURES.items()}
_KNOWN = {"num_neighbors", "distance_measure", "partitioning", "hash", "brute_force", "exact_reordering",
          "autopilot", "input_output"}
_REORDER_DTYPES = {"FLOAT32": "float32", "BFLOAT16": "bfloat16", "INT8": "int8"}
_DTYPE_QUANTIZED = {"float32": {"fixed_point": {"enabled": False}}, "bfloat16": {"bfloat16": {"enabled": True}},
                    "int8": {"fixed_point": {"enabled": True}}}
# Autopilot's brute force switches to a tree at defaults.BRUTE_FORCE_BELOW points and back
# below half of that, so that an index near the threshold does not rebuild on every update.
_SHRINK_BELOW = defaults.BRUTE_FORCE_BELOW // 2


@dataclass(frozen=True)
class Plan:
    """What annlib builds for a ScaNN config.

    config: the annlib index; its data is `padded_dim` wide (zero columns appended when
        ScaNN's last AH block would be partial: scores are unchanged).
    exhaustive_leaves: tree + brute force: every point of the searched leaves is rescored
        exactly (annlib reorders all of their AH candidates).
    incremental_threshold: retrain (rebalance) once this many points (int) or this share of
        them (float) changed since training; None: only when asked.
    autopilot: (incremental mode, reorder dtype) when autopilot chose the stages.
    """

    config: IndexConfig
    padded_dim: int
    exhaustive_leaves: bool = False
    incremental_threshold: int | float | None = None
    autopilot: tuple[str, str] | None = None


def _message(fields, name: str) -> dict:
    value = fields.get(name, {})
    if isinstance(value, list):
        raise ValueError(f"config: {name} is given {len(value)} times")
    if not isinstance(value, dict):
        raise ValueError(f"config: {name} must be a message, got {value!r}")
    return value


def _number(fields: dict, name: str, default=None):
    value = fields.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"config: {name} must be a number, got {value!r}")
    return value


def _count(fields: dict, name: str, default=None):
    value = _number(fields, name, default)
    if value is not None and not isinstance(value, int):
        raise ValueError(f"config: {name} must be an integer, got {value!r}")
    return value


def measure_of(fields: dict) -> str:
    name = _message(fields, "distance_measure").get("distance_measure")
    if name not in _MEASURES:
        raise ValueError(f"config: distance_measure must be one of {sorted(_MEASURES)}, got {name!r}")
    return _MEASURES[name]


def _copy_dtype(fields: dict) -> str:
    """float32, bfloat16 or int8 from a brute_force or exact_reordering stanza."""
    if _message(fields, "bfloat16").get("enabled", False):
        return "bfloat16"
    if _message(fields, "fixed_point").get("enabled", False):
        return "int8"
    return "float32"


def _tree(partitioning: dict, n: int | None) -> tuple[TreeConfig, int | float | None]:
    leaves = _count(partitioning, "num_children")
    if leaves is None:
        raise ValueError("config: partitioning needs num_children")
    if n is not None:
        leaves = max(1, min(leaves, n))  # more leaves than points: every point is a leaf
    searched = _count(_message(partitioning, "query_spilling"), "max_spill_centers", leaves)
    spilling = _message(partitioning, "database_spilling")
    soar = _number(spilling, "orthogonality_amplification_lambda") if spilling else None
    if partitioning.get("avq") is not None and not math.isnan(partitioning["avq"]):
        warnings.warn("tree(avq=...): annlib does not rescale its centroids (AVQ); the setting is ignored",
                      CompatWarning, stacklevel=4)
    init = partitioning.get("single_machine_center_initialization", "RANDOM_INITIALIZATION")
    tree = TreeConfig(num_leaves=leaves, num_leaves_to_search=max(1, min(searched, leaves)),
                      training_sample_size=_count(partitioning, "expected_sample_size", 100_000),
                      spherical=partitioning.get("partitioning_type", "GENERIC") == "SPHERICAL",
                      iterations=_count(partitioning, "max_clustering_iterations", 12),
                      init="random" if init == "RANDOM_INITIALIZATION" else "kmeans++",
                      soar_lambda=None if soar is None else float(soar),
                      overretrieve_factor=float(_number(spilling, "overretrieve_factor", 2.0)),
                      augment_norms=partitioning.get("augment_norms", False) is True)
    incremental = _message(partitioning, "incremental_training_config")
    threshold = incremental.get("number_of_datapoints", incremental.get("fraction"))
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or threshold <= 0):
        raise ValueError(f"config: incremental_training_config must be positive, got {threshold!r}")
    return tree, threshold


def _padded_dim(dim: int, dims_per_block: int) -> int:
    """dim rounded up to whole blocks (ScaNN's partial last block, made whole by zero columns)."""
    return -(-dim // dims_per_block) * dims_per_block


def _ah(hashing: dict, dim: int) -> tuple[AhConfig, int]:
    """The AH config and the padded dimension its blocks need."""
    ah = _message(hashing, "asymmetric_hash")
    projection = _message(ah, "projection")
    blocks = projection.get("variable_blocks", projection)
    first = blocks[0] if isinstance(blocks, list) else blocks
    dims_per_block = _count(first, "num_dims_per_block")
    if dims_per_block is None or dims_per_block < 1:
        raise ValueError("config: asymmetric_hash needs projection.num_dims_per_block >= 1")
    if _count(ah, "num_clusters_per_block", 16) == 256:
        # 8 bits per block of b dims as 4 bits per b/2: the same code bytes, LUT16's speed.
        dims_per_block = max(1, dims_per_block // 2)
    threshold = _number(ah, "noise_shaping_threshold")
    config = AhConfig(dimensions_per_block=dims_per_block,
                      anisotropic_quantization_threshold=None if threshold is None or math.isnan(threshold)
                      else float(threshold),
                      training_sample_size=_count(ah, "expected_sample_size", 100_000),
                      training_iterations=_count(ah, "max_clustering_iterations", 10))
    return config, _padded_dim(dim, dims_per_block)


def plan(fields: dict, dim: int, n: int | None = None) -> Plan:
    """The annlib index for a concrete ScaNN config over `dim`-dimensional data (n points,
    when known, bounds the leaf count)."""
    unknown = set(fields) - _KNOWN
    if unknown:
        raise ValueError(f"config: annlib.scann_compat does not support {', '.join(sorted(unknown))}")
    k = _count(fields, "num_neighbors")
    if k is None:
        raise ValueError("config: num_neighbors is missing")
    measure = measure_of(fields)
    stages: dict = {}
    padded, threshold, exhaustive = dim, None, False
    if "partitioning" in fields:
        stages["tree"], threshold = _tree(_message(fields, "partitioning"), n)
    if ("hash" in fields) == ("brute_force" in fields):
        raise ValueError("config: exactly one of hash (score_ah) or brute_force must be set")
    if "hash" in fields:
        stages["score_ah"], padded = _ah(_message(fields, "hash"), dim)
    reorder = _message(fields, "exact_reordering")
    if reorder:
        depth = _count(reorder, "approx_num_neighbors")
        if depth is None:
            raise ValueError("config: exact_reordering needs approx_num_neighbors")
        stages["reorder"] = ReorderConfig(max(depth, k), _copy_dtype(reorder))
    if "brute_force" in fields:
        dtype = _copy_dtype(_message(fields, "brute_force"))
        if "tree" not in stages:
            if reorder:
                raise ValueError("config: brute force with exact_reordering is not supported by annlib")
            stages["brute_force"] = BruteForceConfig(dtype=dtype)
        else:
            # Exact scoring within the searched leaves: AH orders the candidates, and all of
            # them are rescored from a copy in the brute force's dtype.
            exhaustive = True
            dims_per_block = defaults.dims_per_block_for(dim)
            stages["score_ah"] = AhConfig(dimensions_per_block=dims_per_block)
            stages["reorder"] = ReorderConfig(k, dtype)
            padded = _padded_dim(dim, dims_per_block)
    autopilot = _message(fields, "autopilot")
    mode = None
    if autopilot:
        tree_ah = _message(autopilot, "tree_ah")
        mode = (tree_ah.get("incremental_mode", "NONE"),
                _REORDER_DTYPES.get(tree_ah.get("reordering_dtype", "FLOAT32"), "float32"))
    config = IndexConfig(num_neighbors=k, distance_measure=measure, **stages)
    return Plan(config, padded, exhaustive, threshold, mode)


def resolve_autopilot(fields: dict, n: int, dim: int, current_brute_force: bool | None = None,
                      norms: tuple[float, float] | None = None) -> dict:
    """The concrete config autopilot chooses for n points of `dim` dims with
    annlib.defaults.norm_stats() `norms` (annlib.defaults, searching 10% of the leaves); the
    autopilot stanza stays, so that the searcher keeps choosing as it grows.
    current_brute_force: what is built now (for the hysteresis)."""
    autopilot = _message(fields, "autopilot")
    tree_ah = _message(autopilot, "tree_ah")
    dtype = _REORDER_DTYPES.get(tree_ah.get("reordering_dtype", "FLOAT32"))
    if dtype is None or tree_ah.get("incremental_mode", "NONE") not in ("NONE", "ONLINE", "ONLINE_INCREMENTAL"):
        raise ValueError(f"config: unknown autopilot settings {tree_ah!r}")
    measure = measure_of(fields)
    k = _count(fields, "num_neighbors")
    out = {"num_neighbors": k, "distance_measure": {"distance_measure": _NAMES[measure]}}
    below = _SHRINK_BELOW if current_brute_force is False else defaults.BRUTE_FORCE_BELOW
    choice = defaults.choose_build(max(n, 0), dim, measure, tuned=False, brute_force_below=below, norms=norms,
                                   k=k)
    if choice.brute_force:
        out["brute_force"] = {"fixed_point": {"enabled": False}}
    else:
        partitioning = {"num_children": choice.num_leaves,
                        "query_spilling": {"spilling_type": "FIXED_NUMBER_OF_CENTERS",
                                           "max_spill_centers": choice.leaves_to_search},
                        "partitioning_type": "SPHERICAL" if choice.spherical else "GENERIC"}
        if choice.augment_norms:
            partitioning["augment_norms"] = True  # annlib's own field (ScaNN has no counterpart)
        if choice.soar_lambda is not None:
            partitioning["database_spilling"] = {"spilling_type": "TWO_CENTER_ORTHOGONALITY_AMPLIFIED",
                                                 "orthogonality_amplification_lambda": choice.soar_lambda}
        out["partitioning"] = partitioning
        threshold = choice.threshold
        out["hash"] = {"asymmetric_hash": {
            "lookup_type": "INT8_LUT16", "num_clusters_per_block": 16,
            "projection": {"input_dim": dim, "projection_type": "CHUNK",
                           "num_blocks": dim // choice.dims_per_block,
                           "num_dims_per_block": choice.dims_per_block},
            "noise_shaping_threshold": float("nan") if threshold is None else threshold}}
        out["exact_reordering"] = {"approx_num_neighbors": max(100, k), **_DTYPE_QUANTIZED[dtype]}
    out["autopilot"] = autopilot
    return out


def is_brute_force(fields: dict) -> bool:
    return "brute_force" in fields and "partitioning" not in fields
