"""The quantized partitioning index: recall, exactness limits, every SIMD
level, anisotropic encoding, save/load, bad arguments, GIL release."""
import threading
import time

import numpy as np
import pytest

import annlib
from annlib import _core
from annlib.quantized.training import train_codebooks
from annlib.config import IndexConfig

from conftest import clustered, exact_topk, recall, run_python_capped

MEASURES = ["dot_product", "squared_l2", "cosine"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x, q = clustered(rng, 6000, 32, clusters=48, spread=0.3, nq=200)
    return x + 0.5, q + 0.5  # off-center, so dot product and cosine rank differently


def build(x, measure, *, leaves=40, search=8, dpb=2, threshold=None, reorder=100, dtype="float32", k=10):
    b = annlib.builder(x, k, measure).tree(leaves, search).score_ah(dpb, anisotropic_quantization_threshold=threshold)
    if reorder:
        b = b.reorder(reorder, dtype=dtype)
    return b.build(progress=False)


@pytest.fixture(scope="module")
def indexes(data):
    x, _ = data
    return {m: build(x, m) for m in MEASURES}


@pytest.mark.parametrize("measure", MEASURES)
def test_recall_at_moderate_setting(data, indexes, measure, simd_level):
    x, q = data
    s = indexes[measure].with_simd_level(simd_level)
    assert s.simd_level == simd_level
    truth, _ = exact_topk(x, q, 10, measure)
    ids, _ = s.search_batched(q)
    assert recall(ids, truth) >= 0.9


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_full_scan_and_reorder_is_exact(data, measure, dtype, simd_level):
    """Every leaf searched and every candidate rescored: the float32 copy must
    give the exact answer; bf16/int8 copies score within their precision."""
    x, q = data
    s = build(x, measure, reorder=200, dtype=dtype).with_simd_level(simd_level)
    truth, true_scores = exact_topk(x, q, 10, measure)
    ids, scores = s.search_batched(q, leaves_to_search=s.num_leaves, pre_reorder_num_neighbors=len(x))
    if dtype == "float32":
        assert recall(ids, truth) >= 0.999
        np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-3)
    else:
        assert recall(ids, truth) >= 0.9  # neighbors here are close: lossy copies swap a few
        # Returned scores are the rescored ones: close to the exact score of the returned id.
        _, all_scores = exact_topk(x, q, len(x), measure)
        order, _ = exact_topk(x, q, len(x), measure)
        lookup = np.empty_like(all_scores)
        np.put_along_axis(lookup, order, all_scores, 1)
        exact_of_returned = np.take_along_axis(lookup, ids, 1)
        # bf16 / int8 round each value to ~2^-8 relative: the dot product's error
        # is bounded by a small fraction of |q| |x| (doubled for squared L2).
        scale = np.linalg.norm(q, axis=1).max() * np.linalg.norm(x, axis=1).max()
        assert np.abs(scores - exact_of_returned).max() <= 0.02 * scale


def test_levels_agree(data, indexes):
    x, q = data
    s = indexes["squared_l2"]
    results = [s.with_simd_level(level).search_batched(q)[0] for level in annlib.available_simd_levels()]
    for other in results[1:]:
        # LUT rounding may differ in the last bit between levels; answers barely do.
        assert recall(other, results[0]) >= 0.98


@pytest.mark.parametrize("measure", MEASURES)
def test_single_query_path_matches_batched(data, indexes, measure):
    x, q = data
    s = indexes[measure]
    ids_b, scores_b = s.search_batched(q[:20])
    for i in range(20):
        ids, scores = s.search(q[i])
        assert np.array_equal(ids, ids_b[i])
        np.testing.assert_allclose(scores, scores_b[i], rtol=1e-5, atol=1e-4)
        ids2, _ = s.search(q[i].astype(np.float64))  # the general path
        assert np.array_equal(ids2, ids)


@pytest.mark.parametrize("soar", [None, 1.5])
@pytest.mark.parametrize("measure", ["squared_l2", "dot_product"])
def test_leaf_major_batches_match_single_queries(data, measure, soar, simd_level):
    """Batches of >= 16 queries scan leaf-major with the multi-query LUT16 kernel (several
    queries per pass over a leaf); the results are those of one query at a time."""
    x, q = data
    s = (annlib.builder(x, 10, measure).tree(40, 8, soar_lambda=soar).score_ah(2).reorder(60)
         .build(progress=False).with_simd_level(simd_level))
    for threads in (1, 2):
        ids_b, scores_b = s.search_batched(q[:150], leaves_to_search=12, num_threads=threads)
        for i in range(0, 150, 7):
            ids, scores = s.search(q[i], leaves_to_search=12)
            assert np.array_equal(ids, ids_b[i])
            np.testing.assert_allclose(scores, scores_b[i], rtol=1e-5, atol=1e-4)
        if soar is not None:
            assert all(len(set(row)) == len(row) for row in ids_b.tolist())


@pytest.mark.parametrize("reorder", [0, 30])
def test_large_leaf_major_blocks_match_single_queries(rng, reorder):
    """With many leaves and few of them probed, a batch's leaf-major blocks grow past 256
    queries (about 8 queries per leaf, a block per thread, centroids scored 64 queries at a
    time within a block): the results are still those of one query at a time. With
    reordering the batch is also reordered in row order; without, it is not."""
    x, q = clustered(rng, 6000, 16, clusters=60, spread=0.3, nq=1601)
    builder = annlib.builder(x, 10, "squared_l2").tree(300, 2).score_ah(2)
    s = (builder.reorder(reorder) if reorder else builder).build(progress=False)
    single = [s.search(q[i], leaves_to_search=2) for i in range(0, len(q), 23)]
    for threads in (1, 2, 3):  # blocks of 1601, 801 and 534 queries
        ids_b, scores_b = s.search_batched(q, leaves_to_search=2, num_threads=threads)
        for i, (ids, scores) in zip(range(0, len(q), 23), single):
            assert np.array_equal(ids, ids_b[i])
            np.testing.assert_allclose(scores, scores_b[i], rtol=1e-5, atol=1e-4)


def test_scores_in_natural_sense(data, indexes):
    x, q = data
    ids, scores = indexes["squared_l2"].search(q[0])
    assert np.all(np.diff(scores) >= 0)
    np.testing.assert_allclose(scores, ((x[ids] - q[0]) ** 2).sum(1), rtol=1e-4)
    ids, scores = indexes["dot_product"].search(q[0])
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(scores, x[ids] @ q[0], rtol=1e-5)


def test_more_leaves_and_candidates_never_hurt_much(data, indexes):
    x, q = data
    s = indexes["dot_product"]
    truth, _ = exact_topk(x, q, 10, "dot_product")
    r_small = recall(s.search_batched(q, leaves_to_search=2, pre_reorder_num_neighbors=10)[0], truth)
    r_large = recall(s.search_batched(q, leaves_to_search=20, pre_reorder_num_neighbors=200)[0], truth)
    assert r_large > r_small and r_large >= 0.97


def test_without_reorder_and_without_tree(data):
    x, q = data
    truth, _ = exact_topk(x, q, 10, "dot_product")
    s = build(x, "dot_product", reorder=0)
    ids, scores = s.search_batched(q, leaves_to_search=40)
    assert recall(ids, truth) >= 0.6  # 4-bit PQ alone at 2 dims/block
    # AH scores approximate the true ones.
    np.testing.assert_allclose(scores[:, 0], (x[ids[:, 0]] * q).sum(1), atol=0.1 * np.abs(scores).max())
    flat = annlib.builder(x, 10, "dot_product").score_ah(2).reorder(100).build(progress=False)
    assert flat.num_leaves == 1
    assert recall(flat.search_batched(q)[0], truth) >= 0.95


def test_k_results_when_the_searched_leaves_hold_fewer_than_k(rng):
    # One leaf of ~10 points cannot fill 60 results: those queries are searched
    # again exactly, so k results come back whenever the index holds k points.
    x = rng.standard_normal((100, 8)).astype(np.float32)
    s = annlib.builder(x, 5, "squared_l2").tree(10, 1).score_ah(2).reorder(5).build(progress=False)
    ids, scores = s.search_batched(x[:5], final_num_neighbors=60)
    assert ids.shape == (5, 60)
    assert not np.isin(-1, ids)
    truth = np.argsort(((x[:5, None, :] - x[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :60]
    for row, expected in zip(ids, truth):
        assert set(row) == set(expected)
    assert np.all(np.diff(scores, axis=1) >= 0)


def _anisotropic_loss(residual, original, approx, eta):
    e = residual - approx
    par = (e * original).sum(1) / np.linalg.norm(original, axis=1)
    return eta * par**2 + ((e * e).sum(1) - par**2)


def test_anisotropic_encoding_lowers_its_loss(rng):
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centers = train_codebooks(x, 2, iterations=5, progress=False)
    plain = _core.ah_encode(x, x, centers, 0.0, 16)
    aniso = _core.ah_encode(x, x, centers, 0.5, 16)
    eta = _core.anisotropic_eta(0.5, 1.0, 16)
    assert eta == pytest.approx(15 * 0.25 / 0.75)
    # A point far longer than the threshold weighs every direction alike, never less along itself.
    assert _core.anisotropic_eta(0.2, 128.0, 128) == 1.0
    assert _core.anisotropic_eta(0.0, 1.0, 16) == 1.0

    def decode(codes):
        return centers[np.arange(8)[None, :], codes].reshape(len(x), 16)

    loss_plain = _anisotropic_loss(x, x, decode(plain), eta)
    loss_aniso = _anisotropic_loss(x, x, decode(aniso), eta)
    assert np.all(loss_aniso <= loss_plain + 1e-5)
    assert loss_aniso.mean() < 0.9 * loss_plain.mean()
    # Plain encoding is each block's nearest center.
    blocks = x.reshape(len(x), 8, 1, 2)
    nearest = ((blocks - centers[None]) ** 2).sum(-1).argmin(-1)
    assert np.array_equal(plain, nearest)


@pytest.mark.parametrize("dims_per_block", [1, 2, 3, 4])
def test_plain_encoding_takes_the_first_of_tied_centers(rng, dims_per_block):
    """Nearest-center codes equal numpy's argmin (its first minimum) for every block width
    (1, 2 and 4 have their own compiled loops, 3 the general one), with centers repeated so
    that ties are everywhere, and points that sit exactly on a center."""
    num_blocks = 5
    centers = rng.standard_normal((num_blocks, 16, dims_per_block)).astype(np.float32)
    centers[:, 9] = centers[:, 2]
    centers[:, 15] = centers[:, 2]
    centers[:, 4] = centers[:, 11]
    x = rng.standard_normal((400, num_blocks * dims_per_block)).astype(np.float32)
    x[:100] = centers[np.arange(num_blocks), rng.choice([2, 9, 11, 4], (100, num_blocks))].reshape(100, -1)
    codes = _core.ah_encode(x, x, centers, 0.0, x.shape[1])
    e = x.reshape(len(x), num_blocks, 1, dims_per_block) - centers[None]
    want = (e * e).sum(-1, dtype=np.float32).argmin(-1)
    assert np.array_equal(codes, want)
    assert not np.isin(codes, [9, 15, 11]).any()  # a repeated center is never the one taken


@pytest.mark.parametrize("dims_per_block", [1, 2, 4])
@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_encoding_copies_matches_encoding_their_residual_rows(rng, dims_per_block, threshold):
    """A build encodes each copy (a point in its primary or spill leaf) without forming
    its residual row in Python: the same codes as ah_encode of x[points] - centers[leaves]."""
    num_blocks = 6
    d = num_blocks * dims_per_block
    x = rng.standard_normal((700, d)).astype(np.float32)
    centers = rng.standard_normal((9, d)).astype(np.float32)
    codebooks = (0.5 * rng.standard_normal((num_blocks, 16, dims_per_block))).astype(np.float32)
    points = np.concatenate([np.arange(700), rng.integers(0, 700, 300)]).astype(np.int64)
    leaves = rng.integers(0, 9, len(points)).astype(np.int64)
    want = _core.ah_encode(x[points] - centers[leaves], x[points], codebooks, threshold, d, 10, 2)
    got = _core.ah_encode_copies(x, points, centers, leaves, codebooks, threshold, d, 10, 2)
    assert np.array_equal(got, want)
    for bad_points, bad_leaves, what in ((points - 1, leaves, "point out of range"),
                                         (points, leaves + 1, "leaf out of range")):
        with pytest.raises(ValueError, match=what):
            _core.ah_encode_copies(x, np.ascontiguousarray(bad_points), centers, np.ascontiguousarray(bad_leaves),
                                   codebooks, threshold, d)
    with pytest.raises(ValueError, match="same length"):
        _core.ah_encode_copies(x, points[:5], centers, leaves, codebooks, threshold, d)
    with pytest.raises(ValueError, match="same d"):
        _core.ah_encode_copies(x, points, np.ascontiguousarray(centers[:, 1:]), leaves, codebooks, threshold, d)


def _reference_ah_codes(r, x, centers, threshold, eta_dim, max_rounds):
    """The encoder, step by step in Python with its float32 and float64 arithmetic: each
    block's nearest center (the first of equal ones), then coordinate descent on
    |e|^2 + w <e, x>^2, blocks by descending residual norm (equal norms in block order),
    each block taking the trial better than the best so far by more than 1e-12 of the
    current loss."""
    num_blocks, _, dpb = centers.shape
    f32 = np.float32
    codes = np.empty((len(r), num_blocks), np.uint8)
    for i in range(len(r)):
        rb, xb = r[i].reshape(num_blocks, dpb), x[i].reshape(num_blocks, dpb)
        dist = np.zeros((num_blocks, 16), np.float32)
        proj = np.zeros((num_blocks, 16), np.float32)
        for t in range(dpb):  # float32 sums in dimension order, as the kernels add
            e = (rb[:, t, None] - centers[:, :, t]).astype(f32)
            dist = (dist + e * e).astype(f32)
            proj = (proj + e * xb[:, t, None]).astype(f32)
        code = dist.argmin(1)
        norm2 = float(np.sum(x[i].astype(np.float64) ** 2))
        eta = _core.anisotropic_eta(threshold, norm2, eta_dim)
        if eta != 1.0 and norm2 > 0.0 and max_rounds > 0:
            w = (eta - 1.0) / norm2
            p = 0.0
            for b in range(num_blocks):
                p += float(proj[b, code[b]])
            block_norm = [float(f32(sum(float(v) * float(v) for v in rb[b]))) for b in range(num_blocks)]
            order = sorted(range(num_blocks), key=lambda b: (-block_norm[b], b))
            for _ in range(max_rounds):
                changed = False
                for b in order:
                    cur = code[b]
                    p_rest = p - float(proj[b, cur])
                    cur_loss = float(dist[b, cur]) + w * p * p
                    best, best_loss = cur, cur_loss
                    for j in range(16):
                        np_ = p_rest + float(proj[b, j])
                        loss = float(dist[b, j]) + w * np_ * np_
                        if loss < best_loss - 1e-12 * abs(cur_loss):
                            best, best_loss = j, loss
                    if best != cur:
                        code[b] = best
                        p = p_rest + float(proj[b, best])
                        changed = True
                if not changed:
                    break
        codes[i] = code
    return codes


@pytest.mark.parametrize("dims_per_block", [1, 2, 3, 4])
@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_encoding_matches_the_reference_at_every_simd_level(rng, simd_level, dims_per_block, threshold):
    """Every level's encoder (kernels/ah_encode-inl.h, vectorized per ISA) gives the
    reference's codes exactly, coordinate descent included; integer-valued residuals
    give blocks of equal norm, whose order the reference fixes (block order)."""
    num_blocks = 12
    d = num_blocks * dims_per_block
    x = rng.standard_normal((150, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r = (0.3 * rng.standard_normal((150, d))).astype(np.float32)
    r[:40] = rng.integers(-1, 2, (40, d)).astype(np.float32) * 0.25  # ties in block norms
    centers = (0.3 * rng.standard_normal((num_blocks, 16, dims_per_block))).astype(np.float32)
    want = _reference_ah_codes(r, x, centers, threshold, d, 10)
    got = _core.ah_encode(r, x, centers, threshold, d, 10, 1, simd_level)
    np.testing.assert_array_equal(got, want)
    if threshold > 0:
        assert (want != _reference_ah_codes(r, x, centers, 0.0, d, 10)).any()  # the descent did move codes
        for rounds in (0, 1):
            np.testing.assert_array_equal(_core.ah_encode(r, x, centers, threshold, d, rounds, 2, simd_level),
                                          _reference_ah_codes(r, x, centers, threshold, d, rounds))


@pytest.mark.parametrize("n,dims_per_block", [(1, 1), (17, 2), (2049, 4), (5000, 2)])
def test_block_center_sums_match_numpy_on_any_thread_count(rng, n, dims_per_block):
    """The codebook update's sums and counts per (block, center): the numpy reference's,
    and the same bits on 1, 2 or 3 threads (fixed chunks, summed in order)."""
    num_blocks = 6
    x = rng.standard_normal((n, num_blocks * dims_per_block)).astype(np.float32)
    codes = rng.integers(0, 16, (n, num_blocks)).astype(np.uint8)
    codes[: n // 2, 0] = 3  # a crowded center, and most of block 0's others empty
    cell = (np.arange(num_blocks) * 16 + codes).ravel()
    want_counts = np.bincount(cell, minlength=num_blocks * 16).reshape(num_blocks, 16)
    want = np.zeros((num_blocks * 16, dims_per_block))
    np.add.at(want, cell, x.reshape(n * num_blocks, dims_per_block).astype(np.float64))
    runs = [_core.block_center_sums(x, codes, dims_per_block, threads) for threads in (1, 2, 3)]
    for sums, counts in runs:
        assert sums.shape == (num_blocks, 16, dims_per_block) and sums.dtype == np.float64
        assert np.array_equal(counts, want_counts)
        np.testing.assert_allclose(sums.reshape(-1, dims_per_block), want, rtol=1e-12, atol=1e-9)
        assert np.array_equal(sums, runs[0][0])


@pytest.mark.parametrize("n,d,num_centers", [(1, 3, 1), (50, 7, 9), (20_000, 33, 300)])
def test_center_sums_are_the_float32_row_order_sums_on_any_thread_count(rng, n, d, num_centers):
    """k-means' update step: each center's count and its rows' float32 sum in row order,
    the bits of the one-hot sparse product it replaced, on 1, 2 or 3 threads; empty and
    crowded centers; labels out of range refused."""
    import scipy.sparse

    x = (1000 * rng.standard_normal((n, d))).astype(np.float32)
    labels = rng.integers(0, num_centers, n).astype(np.int64)
    labels[: n // 2] = 0  # a crowded center
    if num_centers > 1:
        labels[labels == num_centers - 1] = 0  # the last center empty
    one_hot = scipy.sparse.csr_matrix((np.ones(n, np.float32), (labels, np.arange(n))), shape=(num_centers, n))
    want = np.asarray(one_hot @ x)
    for threads in (1, 2, 3):
        sums, counts = _core.center_sums(x, labels, num_centers, threads)
        assert sums.dtype == np.float32 and sums.shape == (num_centers, d)
        assert np.array_equal(counts, np.bincount(labels, minlength=num_centers))
        assert np.array_equal(sums, want)
    for bad in (labels - 1, labels + num_centers):
        if (bad < 0).any() or (bad >= num_centers).any():
            with pytest.raises(ValueError, match="label out of range"):
                _core.center_sums(x, np.ascontiguousarray(bad), num_centers)
    with pytest.raises(ValueError, match="a label per row"):
        _core.center_sums(x, labels[:-1].copy(), num_centers)


@pytest.mark.parametrize("n,dims_per_block", [(1, 1), (17, 2), (4097, 4), (9000, 2)])
def test_reconstructed_norm2_matches_numpy_on_any_thread_count(rng, n, dims_per_block):
    """|c[leaf] + decoded codes|^2, x~ summed in float32 as numpy holds it: the numpy
    evaluation's, and the same bits on 1, 2 or 3 threads."""
    num_blocks, num_centers = 5, 7
    d = num_blocks * dims_per_block
    centers = (100 * rng.standard_normal((num_centers, d))).astype(np.float32)
    codebooks = rng.standard_normal((num_blocks, 16, dims_per_block)).astype(np.float32)
    leaves = rng.integers(0, num_centers, n).astype(np.int64)
    codes = rng.integers(0, 16, (n, num_blocks)).astype(np.uint8)
    x = centers[leaves] + codebooks[np.arange(num_blocks), codes].reshape(n, d)
    want = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    runs = [_core.reconstructed_norm2(centers, leaves, codes, codebooks, threads) for threads in (1, 2, 3)]
    for got in runs:
        assert got.dtype == np.float64 and got.shape == (n,)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert np.array_equal(got, runs[0])


def test_reconstructed_norm2_refuses_bad_input(rng):
    centers = rng.standard_normal((3, 8)).astype(np.float32)
    codebooks = rng.standard_normal((4, 16, 2)).astype(np.float32)
    leaves = np.zeros(10, np.int64)
    codes = np.zeros((10, 4), np.uint8)
    bad = codes.copy()
    bad[7, 2] = 16
    with pytest.raises(ValueError, match="below 16"):
        _core.reconstructed_norm2(centers, leaves, bad, codebooks)
    for leaf in (-1, 3):
        wrong = leaves.copy()
        wrong[4] = leaf
        with pytest.raises(ValueError, match="leaf out of range"):
            _core.reconstructed_norm2(centers, wrong, codes, codebooks)
    with pytest.raises(ValueError, match="num_blocks \\* dims_per_block"):
        _core.reconstructed_norm2(np.ascontiguousarray(centers[:, :6]), leaves, codes, codebooks)
    with pytest.raises(ValueError, match="shape \\(n, num_blocks\\)"):
        _core.reconstructed_norm2(centers, leaves, np.ascontiguousarray(codes[:, :3]), codebooks)
    with pytest.raises(ValueError, match="leaves must have shape"):
        _core.reconstructed_norm2(centers, leaves[:9], codes, codebooks)
    with pytest.raises(ValueError, match="codebooks must have shape"):
        _core.reconstructed_norm2(centers, leaves, codes, np.ascontiguousarray(codebooks[:, :8]))
    with pytest.raises(TypeError):
        _core.reconstructed_norm2(centers.astype(np.float64), leaves, codes, codebooks)


def test_block_center_sums_refuse_bad_input(rng):
    x = rng.standard_normal((10, 8)).astype(np.float32)
    codes = np.zeros((10, 4), np.uint8)
    codes[7, 2] = 16
    with pytest.raises(ValueError, match="below 16"):
        _core.block_center_sums(x, codes, 2)
    with pytest.raises(ValueError, match="num_blocks \\* dims_per_block"):
        _core.block_center_sums(x, np.ascontiguousarray(codes[:, :3]), 2)
    with pytest.raises(ValueError, match="same number of rows"):
        _core.block_center_sums(x, codes[:9], 2)
    with pytest.raises(TypeError):
        _core.block_center_sums(x.astype(np.float64), codes, 2)


def test_anisotropic_threshold_helps_inner_product_recall(data):
    """On unit vectors, the score-aware loss keeps more true neighbors among AH candidates."""
    x, q = data
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    truth, _ = exact_topk(x, q, 10, "dot_product")
    plain = build(x, "dot_product", reorder=0)
    aniso = build(x, "dot_product", reorder=0, threshold=0.4)
    r_plain = recall(plain.search_batched(q, leaves_to_search=40)[0], truth)
    r_aniso = recall(aniso.search_batched(q, leaves_to_search=40)[0], truth)
    assert r_aniso >= r_plain - 0.01


def test_save_load_round_trip(tmp_path, data, indexes):
    x, q = data
    for measure, s in indexes.items():
        s.save(tmp_path / measure)
        for mmap in (True, False):
            t = annlib.load(tmp_path / measure, mmap=mmap)
            assert t.config == s.config and type(t) is type(s)
            for a, b in zip(t.search_batched(q), s.search_batched(q)):
                assert np.array_equal(a, b)
            assert np.array_equal(t.search(q[0])[0], s.search(q[0])[0])


def test_load_rejects_inconsistent_arrays(tmp_path, data, indexes):
    import json

    s = indexes["dot_product"]
    s.save(tmp_path / "i")
    ids = np.load(tmp_path / "i" / "slot_ids.npy")
    ids[0] = 10**8  # out of range: must be refused, not searched
    np.save(tmp_path / "i" / "slot_ids.npy", ids)
    with pytest.raises(ValueError):
        annlib.load(tmp_path / "i", verify=False)
    with pytest.raises(ValueError):
        annlib.load(tmp_path / "i")  # the checksum catches it first
    manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
    assert "slot_ids" in manifest["arrays"]


def test_config_round_trips_through_json(data):
    x, _ = data
    b = (annlib.builder(x, 10, "cosine").tree(40, 5, spherical=True, init="kmeans++")
         .score_ah(4, anisotropic_quantization_threshold=0.2).reorder(50, dtype="bfloat16"))
    cfg = b.config()
    assert cfg.kind == "quantized"
    assert IndexConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(Exception):
        cfg.tree.num_leaves = 3  # frozen


def test_bad_arguments(data, indexes):
    x, q = data
    s = indexes["dot_product"]
    with pytest.raises(ValueError, match="leaves_to_search"):
        s.search(q[0], leaves_to_search=41)
    with pytest.raises(ValueError, match="leaves_to_search"):
        s.search_batched(q, leaves_to_search=0)
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors"):
        s.search(q[0], final_num_neighbors=10, pre_reorder_num_neighbors=5)
    with pytest.raises(ValueError, match="dimension"):
        s.search(q[0, :5])
    with pytest.raises(ValueError, match="NaN"):
        s.search(np.full(32, np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        s.search_batched(np.full((2, 32), np.inf, np.float32))
    with pytest.raises(ValueError, match="all zeros"):
        indexes["cosine"].search(np.zeros(32, np.float32))
    b = annlib.builder(x, 10, "dot_product")
    with pytest.raises(ValueError, match="num_leaves_to_search"):
        b.tree(10, 11)
    with pytest.raises(ValueError, match="divide"):
        b.score_ah(3)
    with pytest.raises(ValueError, match="num_leaves"):
        annlib.builder(x[:5], 2, "dot_product").tree(6, 1)
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors"):
        annlib.builder(x, 10, "dot_product").reorder(5)
    with pytest.raises(ValueError, match="dtype"):
        annlib.builder(x, 10, "dot_product").reorder(20, dtype="float16")
    b = annlib.builder(x, 10, "dot_product").tree(10, 2)
    with pytest.raises(ValueError, match="already"):
        b.tree(10, 2)
    with pytest.raises(ValueError, match="cannot be combined"):
        b.score_brute_force()
    with pytest.raises(ValueError, match="score_ah"):
        b.config()  # a tree alone scores nothing
    bf = annlib.builder(x, 10, "dot_product").score_brute_force().build()
    with pytest.raises(ValueError, match="quantized"):
        bf.search(q[0], leaves_to_search=3)
    no_reorder = annlib.builder(x, 10, "dot_product").tree(10, 2).score_ah(2).build(progress=False)
    with pytest.raises(ValueError, match="reorder"):
        no_reorder.search(q[0], pre_reorder_num_neighbors=50)


def test_search_releases_the_gil(data, indexes):
    """A Python thread keeps running while another thread is inside a search."""
    x, q = data
    s = indexes["squared_l2"]
    queries = np.repeat(q, 40, axis=0)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    start = time.perf_counter()
    counter.start()
    before = ticks
    s.search_batched(queries, leaves_to_search=20, pre_reorder_num_neighbors=200, num_threads=1)
    during = ticks - before
    done.set()
    counter.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.05
    # With the GIL held for the whole call the counter could only run in the
    # switch intervals before and after it (a few ticks); released, it spins.
    assert during > 10_000


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("overrides", [{}, dict(final_num_neighbors=5), dict(leaves_to_search=3),
                                       dict(pre_reorder_num_neighbors=30, leaves_to_search=12, final_num_neighbors=20)])
def test_single_query_fast_path_matches_general_path(data, indexes, measure, overrides):
    """A float32 vector takes the all-C++ path (with or without overrides); a
    float64 one goes through the general Python edge: same answers."""
    _, q = data
    s = indexes[measure]
    for qi in q[:10]:
        fast_ids, fast_scores = s.search(qi.astype(np.float32), **overrides)
        ids, scores = s.search(qi.astype(np.float64), **overrides)
        np.testing.assert_array_equal(fast_ids, ids)
        np.testing.assert_allclose(fast_scores, scores, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="leaves_to_search"):
        s.search(q[0].astype(np.float32), leaves_to_search=s.num_leaves + 1)
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors"):
        s.search(q[0].astype(np.float32), final_num_neighbors=20, pre_reorder_num_neighbors=10)


_HUGE_PRE_REORDER = r"""
import numpy as np
import annlib
rng = np.random.default_rng(0)
x = rng.standard_normal((3000, 16)).astype(np.float32)
q = rng.standard_normal((200, 16)).astype(np.float32)
for soar in (None, 1.0):
    s = annlib.builder(x, 10, "dot_product").tree(30, 4, soar_lambda=soar).score_ah(2).reorder(40).build(progress=False)
    for call in (lambda **kw: s.search_batched(q, **kw), lambda **kw: s.search(q[0], **kw),
                 lambda **kw: s.search_batched(q[:3], **kw)):
        huge = call(pre_reorder_num_neighbors=2**31 - 1, leaves_to_search=30)
        every = call(pre_reorder_num_neighbors=3000, leaves_to_search=30)
        assert all(np.array_equal(a, b) for a, b in zip(huge, every))
print("ok")
"""


def test_pre_reorder_beyond_the_index_means_every_candidate():
    """pre_reorder_num_neighbors=2**31-1 used to wrap the candidate capacity in int32 and
    corrupt the heap; values beyond the points held now act as 'all of them', in a
    child process (so a crash fails the test) capped at 3 GB (a 22 GB allocation fails, not the
    machine)."""
    out = run_python_capped(_HUGE_PRE_REORDER, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_pre_reorder_beyond_int32_is_refused(data, indexes):
    _, q = data
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors"):
        indexes["dot_product"].search(q[0], pre_reorder_num_neighbors=2**31)
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors"):
        indexes["dot_product"].search_batched(q, pre_reorder_num_neighbors=2**40)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("n,d,dpb", [(1, 4, 2), (5, 64, 2), (17, 64, 1), (40, 96, 2), (100, 384, 4)])
def test_small_databases_build_and_search_exactly(rng, measure, n, d, dpb):
    """Fewer points than blocks x 16 centers once failed inside numpy ('Cannot take a larger
    sample than population'); small data builds, and with every leaf searched and every
    candidate reordered the results are exact."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    k = min(3, n)
    leaves = min(2, n)
    s = annlib.builder(x, k, measure).tree(leaves, leaves).score_ah(dpb).reorder(k).build(progress=False)
    ids, _ = s.search_batched(x, pre_reorder_num_neighbors=n)
    truth, _ = exact_topk(x, x, k, measure)
    assert recall(ids, truth) == 1.0
