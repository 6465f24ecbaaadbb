"""`annlib demo`: builds indexes on the bundled SIFT-20k subset, searches the
500 bundled queries, and reports recall@10 and QPS next to exact search."""
from __future__ import annotations

import time
from importlib import resources

import numpy as np

from . import builder, simd_level
from .recall_math import id_recall


def load_demo_data():
    """(train float32 [20000,128], test float32 [500,128], neighbors int32 [500,100])."""
    with resources.files("annlib.data").joinpath("sift-20k.npz").open("rb") as f:
        data = np.load(f)
        return data["train"].astype(np.float32), data["test"].astype(np.float32), data["neighbors"]


def _time_batched(searcher, queries, k, repeats: int = 3):
    best, ids = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        ids, _ = searcher.search_batched(queries, k)
        best = min(best, time.perf_counter() - start)
    return ids, len(queries) / best


def run_demo(k: int = 10, out=print) -> list[dict]:
    train, test, truth = load_demo_data()
    out(f"annlib demo: SIFT-20k subset ({train.shape[0]} x {train.shape[1]}, squared L2), "
        f"{len(test)} queries, k={k}, SIMD level {simd_level()}")
    configs = [
        ("exact float32", dict(recall_target=1.0, dtype="float32")),
        ("binned recall_target=0.9", dict(recall_target=0.9, dtype="float32")),
        ("bfloat16", dict(recall_target=1.0, dtype="bfloat16")),
        ("int8", dict(recall_target=1.0, dtype="int8")),
    ]
    rows = []
    exact_qps = None
    out(f"{'index':<28}{'recall@10':>10}{'QPS':>12}{'vs exact':>10}{'build s':>9}")
    for label, kwargs in configs:
        start = time.perf_counter()
        searcher = builder(train, k, "squared_l2").score_brute_force(**kwargs).build()
        build_s = time.perf_counter() - start
        ids, qps = _time_batched(searcher, test, k)
        exact_qps = exact_qps or qps
        rec = id_recall(ids, truth, k)
        rows.append({"index": label, "recall": rec, "qps": qps, "build_s": build_s})
        out(f"{label:<28}{rec:>10.4f}{qps:>12.0f}{qps / exact_qps:>9.2f}x{build_s:>9.2f}")
    return rows
