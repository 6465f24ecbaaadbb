"""Frozen, validated index configuration with a JSON round trip.

An IndexConfig describes what the builder was asked for; it is stored as
config.json next to a saved index and is enough, together with the saved
arrays, to rebuild the searcher object.
"""
from __future__ import annotations

import dataclasses
import json
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


@dataclass(frozen=True)
class IndexConfig:
    num_neighbors: int
    distance_measure: str
    brute_force: BruteForceConfig | None = None

    def __post_init__(self):
        if isinstance(self.num_neighbors, bool) or not isinstance(self.num_neighbors, int) or self.num_neighbors < 1:
            raise ValueError(f"num_neighbors must be a positive integer, got {self.num_neighbors!r}")
        check_distance_measure(self.distance_measure)
        if self.brute_force is None:
            raise ValueError("no scoring stage configured: call score_brute_force() on the builder")

    @property
    def kind(self) -> str:
        return "brute_force"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexConfig":
        data = dict(data)
        data.pop("kind", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        bf = data.get("brute_force")
        if bf is not None:
            data["brute_force"] = BruteForceConfig(**bf)
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "IndexConfig":
        return cls.from_dict(json.loads(text))
