"""LUT16 kernel (4-bit codes, uint8 tables in SIMD shuffles) at every SIMD level."""
import numpy as np
import pytest

import annlib
from annlib import _core


def lut16_topk(codes, lut, k, point_bias=None, level=""):
    return _core.testing.Lut16Codes(codes).topk(lut, k, point_bias, level)


def reference_scores(codes, lut, point_bias=None):
    """float64 sum of the per-block table entries, before table quantisation."""
    nb = codes.shape[1]
    s = lut.astype(np.float64)[np.arange(nb)[None, :], codes].sum(axis=1)
    return s if point_bias is None else s + point_bias


@pytest.mark.parametrize("n,nb", [(1, 1), (31, 3), (1000, 4), (5003, 64), (3000, 300), (700, 513)])
def test_lut16_matches_reference(simd_level, rng, n, nb):
    codes = rng.integers(0, 16, (n, nb)).astype(np.uint8)
    lut = rng.standard_normal((nb, 16)).astype(np.float32)
    k = min(n, 25)
    ids, scores = lut16_topk(codes, lut, k, None, simd_level)
    exact = reference_scores(codes, lut)
    # Table quantisation: at most half a step per block.
    step = (lut.max(1) - lut.min(1)).max() / 255
    assert np.abs(scores - exact[ids]).max() <= nb * 0.5 * step + 1e-4
    assert len(set(ids.tolist())) == k and (np.diff(scores) <= 0).all()
    # Every true top-k point whose margin exceeds the quantisation error is found.
    order = np.argsort(-exact)
    sure = order[:k][exact[order[:k]] > exact[order[k - 1]] + nb * step] if n > k else order[:k]
    assert set(sure.tolist()) <= set(ids.tolist())


@pytest.mark.parametrize("nb", [1, 2, 8])
@pytest.mark.parametrize("k", [1, 7, 100, 900])
def test_lut16_selection_is_exact_top_k_under_ties(simd_level, rng, nb, k):
    """The candidate buffer (appends, histogram compactions) returns exactly the
    k best of the kernel's own scores, ties broken by the smaller id, even with
    a handful of distinct scores (one block: at most 16) and many compactions."""
    n = 5000
    codes = rng.integers(0, 16, (n, nb)).astype(np.uint8)
    lut = rng.standard_normal((nb, 16)).astype(np.float32)
    all_ids, all_scores = lut16_topk(codes, lut, n, None, simd_level)
    score_of = np.empty(n, np.float32)
    score_of[all_ids] = all_scores
    expected = np.lexsort((np.arange(n), -score_of))[:k]
    ids, scores = lut16_topk(codes, lut, k, None, simd_level)
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(scores, score_of[expected])


@pytest.mark.parametrize("n", [110, 150, 400])
def test_lut16_selection_with_outliers_returns_distinct_ids(simd_level, n):
    """A full buffer whose top buckets hold most entries (scores rising by id, a few far
    below) makes MakeRoom fall back to an exact selection; the entries its bucket pass
    had already moved must not come back as second copies (search_batched returned an
    id twice in a row because of this)."""
    k = 10
    codes = np.zeros((n, 4), np.uint8)
    bias = (np.arange(n) * 1e-3).astype(np.float32)
    bias[::10] = -100.0
    ids, scores = lut16_topk(codes, np.zeros((4, 16), np.float32), k, bias, simd_level)
    expected = np.lexsort((np.arange(n), -bias))[:k]
    np.testing.assert_array_equal(ids, expected)
    assert len(set(ids.tolist())) == k


def test_lut16_levels_bit_identical(rng):
    codes = rng.integers(0, 16, (20000, 96)).astype(np.uint8)
    lut = rng.standard_normal((96, 16)).astype(np.float32)
    bias = rng.standard_normal(20000).astype(np.float32)
    ref = lut16_topk(codes, lut, 50, bias, "scalar")
    for level in annlib.available_simd_levels()[1:]:
        got = lut16_topk(codes, lut, 50, bias, level)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), level


def test_lut16_point_bias_is_added(rng):
    codes = rng.integers(0, 16, (500, 8)).astype(np.uint8)
    lut = rng.standard_normal((8, 16)).astype(np.float32)
    bias = np.zeros(500, np.float32)
    bias[123] = 1e4
    ids, scores = lut16_topk(codes, lut, 1, bias)
    assert ids[0] == 123 and scores[0] > 9e3


def test_lut16_extreme_tables_do_not_overflow(rng):
    # Every entry at its block's maximum: 16-bit lanes at their limit per chunk.
    nb = 1024
    codes = np.full((64, nb), 15, np.uint8)
    codes[7] = 0
    lut = np.tile(np.arange(16, dtype=np.float32), (nb, 1))
    for level in annlib.available_simd_levels():
        ids, scores = lut16_topk(codes, lut, 64, None, level)
        assert ids[-1] == 7 and scores[0] == pytest.approx(15 * nb, rel=1e-5), level


def test_lut16_bad_arguments(rng):
    codes = rng.integers(0, 16, (10, 4)).astype(np.uint8)
    with pytest.raises(ValueError):
        lut16_topk(codes, np.zeros((5, 16), np.float32), 3)
    with pytest.raises(ValueError):
        lut16_topk(codes, np.zeros((4, 16), np.float32), 11)
    with pytest.raises(TypeError):
        lut16_topk(codes.astype(np.int32), np.zeros((4, 16), np.float32), 3)
    with pytest.raises(ValueError):
        lut16_topk(codes, np.zeros((4, 16), np.float32), 3, point_bias=np.zeros(9, np.float32))


@pytest.mark.parametrize("n,nb", [(1, 1), (33, 3), (1000, 4), (777, 64), (300, 300), (200, 513)])
@pytest.mark.parametrize("queries", [1, 2, 3, 4, 5, 9])
def test_lut16_multi_query_scan_equals_single_scans(simd_level, rng, n, nb, queries):
    """The batched search's kernel (one pass over the codes for up to four tables, then the
    rest) returns for each table exactly the ids and scores of that table's own scan: the
    kernels' accumulators differ (and are compiled with their own flags, setup.py)."""
    codes = rng.integers(0, 16, (n, nb)).astype(np.uint8)
    luts = rng.standard_normal((queries, nb, 16)).astype(np.float32)
    luts[-1] = np.round(luts[-1])  # ties
    scanner = _core.testing.Lut16Codes(codes)
    k = min(n, 40)
    ids, scores = scanner.topk_many(luts, k, simd_level)
    for j in range(queries):
        one_ids, one_scores = scanner.topk(luts[j], k, None, simd_level)
        np.testing.assert_array_equal(ids[j], one_ids)
        np.testing.assert_array_equal(scores[j], one_scores)
