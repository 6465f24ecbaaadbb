"""TPU-KNN binned selection: recall meets the target and the expected-recall formula."""
import math

import numpy as np
import pytest

import annlib
from conftest import clustered, exact_topk, recall


def test_expected_recall_formula():
    assert annlib.expected_recall(176, 10) == pytest.approx((176 / 10) * (1 - (1 - 1 / 176) ** 10))
    assert annlib.num_bins_for(0.95, 10) == 176  # XLA's sizing, docs/algorithms.md section 6
    assert annlib.num_bins_for(0.99, 10) == 896
    assert annlib.num_bins_for(1.0, 10) == 0
    assert annlib.num_bins_for(0.5, 10) >= 10  # never fewer bins than k
    for r in [0.8, 0.9, 0.95, 0.99]:
        assert annlib.expected_recall(annlib.num_bins_for(r, 10), 10) >= r
    with pytest.raises(ValueError):
        annlib.num_bins_for(0.0, 10)


def test_recall_refuses_results_and_truth_of_different_queries():
    truth = np.arange(40).reshape(4, 10)
    assert annlib.recall_at_k(truth[:, :5], truth) == 1.0
    with pytest.raises(ValueError, match="one row per query"):
        annlib.recall_at_k(truth[:2], truth)  # 2 queries' results against 4 queries' truth
    with pytest.raises(ValueError, match="one row per query"):
        annlib.recall_at_k(truth[0], truth[:1])
    with pytest.raises(ValueError, match="k must be"):
        annlib.recall_at_k(truth, truth, 0)


@pytest.mark.parametrize("kind", ["random", "clustered"])
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("measure", ["dot_product", "squared_l2"])
def test_binned_recall_meets_target(simd_level, rng, kind, target, measure):
    n, d, k = 30000, 32, 10
    if kind == "random":
        x, q = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((600, d)).astype(np.float32)
    else:
        x, q = clustered(rng, n, d, nq=600)
    s = annlib.builder(x, k, measure).score_brute_force(recall_target=target).build().with_simd_level(simd_level)
    ids, scores = s.search_batched(q)
    truth, _ = exact_topk(x, q, k, measure)
    got = recall(ids, truth)
    bins = s.num_bins(k)
    assert bins == math.ceil((k - 1) / -math.log(target))
    assert got >= target - 0.01
    assert got >= annlib.expected_recall(bins, k) - 0.02
    # Survivors are still exactly scored and sorted.
    assert (np.diff(scores, axis=1) <= 0).all() if measure == "dot_product" else (np.diff(scores, axis=1) >= 0).all()


def test_binned_single_query_uses_database_splits(rng):
    x = rng.standard_normal((50000, 16)).astype(np.float32)
    q = rng.standard_normal((1, 16)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.99).build()
    ids, _ = s.search(q[0], num_threads=2)
    truth, _ = exact_topk(x, q, 10, "dot_product")
    assert len(np.intersect1d(ids, truth[0])) >= 8
