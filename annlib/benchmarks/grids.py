"""Which builds each algorithm is measured at and which query settings are swept.

Grids scale with the dataset: partitioned indexes (annlib, ScaNN, FAISS IVF)
get about 2*sqrt(n) leaves and search 1-40% of them, with reorder budgets
from 1.5k to 25k candidates; graph indexes sweep ef. Every partitioned system
gets the same leaf count and the same sweep, so the curves are comparable.
`quick=True` keeps one build per algorithm and a short sweep (smoke runs).
`reorder_dtypes` builds annlib and ScaNN once per reorder copy type (float32 by
default; ScaNN's bfloat16 and int8 ReorderTypes are the same trade: fewer bytes
read per re-ranked candidate, scores rounded). The runner adds settings between
the grid's steps near the recall targets (refine.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..defaults import SOAR_LAMBDA, num_leaves_for  # annlib's recommendation, measured on the dev sets

SCANN_SOAR_LAMBDA = 1.0    # ScaNN's own recommendation

REORDER_DTYPES = ("float32", "bfloat16", "int8")
ALL_LABELS = ("annlib+soar", "annlib", "scann+soar", "scann", "faiss-ivfpqfs", "faiss-hnsw", "hnswlib", "bruteforce")


@dataclass(frozen=True)
class Definition:
    """One build of one algorithm and the query settings it is swept over."""
    label: str                   # the series name in results, plots and tables
    family: str                  # the wrapper (algorithms.FAMILIES)
    build_args: dict
    query_args: list = field(default_factory=list)

    @property
    def name(self) -> str:
        args = " ".join(f"{key}={value}" for key, value in self.build_args.items())
        return f"{self.label}({args})"

    def to_json(self) -> str:
        return json.dumps({"label": self.label, "family": self.family, "build_args": self.build_args,
                           "query_args": self.query_args})

    @classmethod
    def from_json(cls, text: str) -> "Definition":
        data = json.loads(text)
        return cls(data["label"], data["family"], data["build_args"], data["query_args"])


def leaf_sweep(num_leaves: int, quick: bool) -> list:
    # From 0.5% of the leaves: on millions of points (thousands of leaves) 1-2% already
    # overshoot recall 0.90, and the low cells need their own points.
    fractions = ([0.005, 0.01, 0.02, 0.05, 0.1, 0.2] if quick
                 else [0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.25, 0.4])
    return sorted({max(1, int(round(f * num_leaves))) for f in fractions})


def reorder_sweep(k: int, quick: bool) -> list:
    # 1.5k: at k=100 on words both annlib and ScaNN are fastest at recall 0.90 re-ranking
    # 150 (bench/frontier.py); a grid starting at 2k missed that point for both.
    return [4 * k, 10 * k, 25 * k] if quick else [k + k // 2, 2 * k, 4 * k, 10 * k, 25 * k]


def ef_sweep(k: int, quick: bool) -> list:
    efs = [20, 40, 80, 160] if quick else [10, 20, 40, 60, 80, 120, 160, 240, 400, 800]
    return sorted({max(ef, k) for ef in efs})


def ah_builds(d: int, measure: str, quick: bool) -> list:
    """(dims_per_block, threshold) pairs: 2 dims everywhere, also 4 at d >= 256; the
    anisotropic threshold on inner-product data only (0.2 at d <= 128, 0.1 above)."""
    threshold = None if measure == "squared_l2" else (0.2 if d <= 128 else 0.1)
    if quick:
        return [(2, threshold)]
    dpbs = [2, 4] if d >= 256 else [2]
    thresholds = [None] if threshold is None else [None, threshold]
    return [(dpb, t) for dpb in dpbs for t in thresholds]


def definitions(n: int, d: int, measure: str, k: int, labels=ALL_LABELS, quick: bool = False,
                reorder_dtypes=("float32",)) -> list:
    """Every build to run for a dataset of n points in d dims, in the order given by labels;
    annlib and ScaNN once per reorder copy type in reorder_dtypes."""
    unknown = [t for t in reorder_dtypes if t not in REORDER_DTYPES]
    if unknown or not reorder_dtypes:
        raise ValueError(f"reorder_dtypes must name one or more of {', '.join(REORDER_DTYPES)}, "
                         f"got {list(reorder_dtypes)}")

    def with_dtype(args: dict, dtype: str) -> dict:  # float32 builds keep their names of before
        return args if dtype == "float32" else {**args, "reorder_dtype": dtype}

    leaves = num_leaves_for(n)
    partition_sweep = [{"leaves": leaf, "reorder": r} for leaf in leaf_sweep(leaves, quick)
                       for r in reorder_sweep(k, quick)]
    graph_sweep = [{"ef": ef} for ef in ef_sweep(k, quick)]
    out = []
    for label in labels:
        if label in ("annlib", "annlib+soar"):
            soar = SOAR_LAMBDA if label == "annlib+soar" else None
            for dpb, t in ah_builds(d, measure, quick):
                for dtype in reorder_dtypes:
                    out.append(Definition(label, "annlib", with_dtype({"num_leaves": leaves, "dims_per_block": dpb,
                                                                       "threshold": t, "soar_lambda": soar}, dtype),
                                          partition_sweep))
        elif label in ("scann", "scann+soar"):
            if label == "scann+soar" and measure != "dot_product":
                continue  # ScaNN allows SOAR with dot product only (noted by the runner)
            soar = SCANN_SOAR_LAMBDA if label == "scann+soar" else None
            # Spherical k-means leaves on inner-product data as well as ScaNN's default (plain
            # k-means): on unit vectors they reach a recall with far fewer leaves, as annlib's do.
            for spherical in ([False, True] if measure == "dot_product" and not quick else [False]):
                for t in sorted({t for _, t in ah_builds(d, measure, quick)}, key=str):
                    for dtype in reorder_dtypes:
                        out.append(Definition(label, "scann", with_dtype({"num_leaves": leaves, "threshold": t,
                                                                          "soar_lambda": soar, "spherical": spherical},
                                                                         dtype), partition_sweep))
        elif label == "faiss-ivfpqfs":
            out.append(Definition(label, label, {"nlist": leaves},
                                  [{"nprobe": q["leaves"], "reorder": q["reorder"]} for q in partition_sweep]))
        elif label == "faiss-hnsw":
            out.append(Definition(label, label, {"M": 32, "ef_construction": 200}, graph_sweep))
        elif label == "hnswlib":
            for m in ([16] if quick else [16, 32]):
                out.append(Definition(label, label, {"M": m, "ef_construction": 200}, graph_sweep))
        elif label == "bruteforce":
            out.append(Definition(label, label, {}, [{}]))
        else:
            raise ValueError(f"unknown algorithm {label!r}; choose from {', '.join(ALL_LABELS)}")
    return out
