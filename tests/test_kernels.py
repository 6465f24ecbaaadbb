"""Every dense kernel at every SIMD level against a float64 NumPy reference."""
import numpy as np
import pytest

import annlib
from annlib import _core
from conftest import clustered, exact_topk, recall

MEASURES = ["dot_product", "squared_l2", "cosine"]
# Shapes that exercise padding: n not a multiple of 32, d not a multiple of 4,
# and d > 128 panel rows per slice (K-blocking) for every dtype.
SHAPES = [(997, 37), (3000, 128), (2100, 515)]


def bf16_round(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_float32_exact_matches_reference(simd_level, rng, n, d, measure):
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((70, d)).astype(np.float32)
    k = 15
    s = annlib.builder(x, k, measure).score_brute_force().build().with_simd_level(simd_level)
    assert s.simd_level == simd_level
    ids, scores = s.search_batched(q)
    ref_ids, ref_scores = exact_topk(x, q, k, measure)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (70, k)
    assert recall(ids, ref_ids) >= 0.999
    # Scores are the true scores of the returned ids, in the metric's sense.
    scale = np.abs(ref_scores).max()
    assert np.allclose(scores, ref_scores, atol=2e-5 * scale, rtol=0)


def check_bf16(rng, n, d, level, variant):
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((40, d)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(dtype="bfloat16").build()
    s = s.with_simd_level(level, bf16_variant=variant)
    ids, scores = s.search_batched(q)
    exact_scores = q.astype(np.float64) @ bf16_round(x).astype(np.float64).T
    got = np.take_along_axis(exact_scores, ids, 1)
    # Data are bf16-rounded exactly; the native kernel also rounds the query (2^-9 relative).
    tol = 2.0**-8 * np.sqrt(d) * np.abs(q).max() * np.abs(x).max()
    assert np.abs(scores - got).max() <= tol
    ref_ids, _ = exact_topk(x, q, 10, "dot_product")
    assert recall(ids, ref_ids) >= 0.95


@pytest.mark.parametrize("n,d", SHAPES)
def test_bfloat16_scores_match_rounded_reference(simd_level, rng, n, d):
    check_bf16(rng, n, d, simd_level, "auto")


@pytest.mark.skipif("avx512_bf16" not in annlib.available_simd_levels(), reason="needs AVX-512 BF16")
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("variant", ["native", "widened", "amx"])
def test_bfloat16_every_avx512_bf16_variant(rng, n, d, variant):
    if variant == "amx" and not _core.amx_usable():
        pytest.skip("needs AMX-BF16 (and the OS's permission to use it)")
    check_bf16(rng, n, d, "avx512_bf16", variant)


@pytest.mark.skipif(not _core.amx_usable(), reason="needs AMX (and the OS's permission to use it)")
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("nq", [3, 40])
def test_int8_on_amx_is_bit_identical_to_vnni(rng, n, d, nq):
    """int8 dots are exact integers on both paths, so AMX tiles (and, below 4
    queries, the vector fallback) give the vector kernel's scores bit for bit."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    s = annlib.builder(x, 10, "squared_l2").score_brute_force(dtype="int8").build()
    amx = s.with_simd_level("avx512_bf16", bf16_variant="amx").search_batched(q)
    vnni = s.with_simd_level("avx512_bf16", bf16_variant="widened").search_batched(q)
    np.testing.assert_array_equal(amx[0], vnni[0])
    np.testing.assert_array_equal(amx[1], vnni[1])


NATIVE_BF16 = "avx512_bf16" in annlib.available_simd_levels()


def exact_scores(x, q, measure):
    """float64 scores in the metric's sense: [len(q), len(x)]."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if measure == "cosine":
        x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
        q64 /= np.linalg.norm(q64, axis=1, keepdims=True)
    true = q64 @ x64.T
    if measure == "squared_l2":
        true = (q64**2).sum(1)[:, None] - 2 * true + (x64**2).sum(1)[None, :]
    return true


@pytest.mark.skipif(not _core.amx_usable(), reason="needs AMX (and the OS's permission to use it)")
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("nq", [3, 40, 600])
def test_binned_float32_screened_on_amx_matches_vector_kernel(rng, n, d, measure, nq):
    """Binned float32 on AMX picks bin winners with bf16x3 tile products and
    rescores them exactly; clustered data (|q||x| far above the score gaps)
    would defeat plain bf16. Results match the float32 vector kernel's, also
    for an index without norms (saved before they existed), which rescores the
    2k best screened winners instead of those its error bound admits."""
    x, q = clustered(rng, n, d, nq=nq)
    s = annlib.builder(x, 10, measure).score_brute_force(recall_target=0.9).build()
    amx_ids, amx_scores = s.with_simd_level("avx512_bf16", bf16_variant="amx").search_batched(q)
    vec_ids, vec_scores = s.with_simd_level("avx512").search_batched(q)
    assert (amx_ids == vec_ids).mean() >= 0.995
    true = exact_scores(x, q, measure)
    scale = np.abs(true).max()
    np.testing.assert_allclose(amx_scores, vec_scores, atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(amx_scores, np.take_along_axis(true, amx_ids, 1), atol=2e-5 * scale, rtol=0)
    arrays = {key: value for key, value in s._arrays().items() if key != "norms"}
    old = annlib.BruteForceSearcher(s.config, arrays, bf16_variant="amx", format_version=1)
    old_ids, old_scores = old.search_batched(q)
    assert (old_ids == amx_ids).mean() >= 0.995
    np.testing.assert_allclose(old_scores, np.take_along_axis(true, old_ids, 1), atol=2e-5 * scale, rtol=0)


@pytest.mark.skipif(not NATIVE_BF16, reason="needs AVX-512 BF16")
@pytest.mark.parametrize("kind,measure", [("gaussian", "dot_product"), ("gaussian", "cosine"),
                                          ("gaussian", "squared_l2"), ("integers", "squared_l2")])
@pytest.mark.parametrize("nq", [3, 40, 600])
def test_binned_float32_bf16_screen_keeps_recall(rng, kind, measure, nq):
    """Without AMX, binned float32 picks bin winners with one bf16 product per
    pair (vdpbf16ps, twice float32's multiply-adds per instruction) where a
    sample says that loses nothing; winners are rescored exactly. Integer data
    up to 256 is exact in bf16 (SIFT-like descriptors)."""
    n, d, k = 20000, 48, 10
    if kind == "integers":
        x = rng.integers(0, 200, (n, d)).astype(np.float32)
        q = rng.integers(0, 200, (nq, d)).astype(np.float32)
    else:
        x, q = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((nq, d)).astype(np.float32)
    base = annlib.builder(x, k, measure).score_brute_force(recall_target=0.9).build()
    screened = base.with_simd_level("avx512_bf16", bf16_variant="native")
    assert screened.uses_screen()
    assert not base.with_simd_level("avx512").uses_screen()
    ids, scores = screened.search_batched(q)
    plain_ids, _ = base.with_simd_level("avx512").search_batched(q)
    true = exact_scores(x, q, measure)
    order = np.argsort(true, 1) if measure == "squared_l2" else np.argsort(-true, 1)
    truth = order[:, :k]
    hits = lambda found: np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth)]) / k
    assert hits(ids) >= hits(plain_ids) - 0.005
    assert (ids == plain_ids).mean() >= 0.99
    # Survivors carry exact scores, sorted.
    scale = np.abs(true).max()
    np.testing.assert_allclose(scores, np.take_along_axis(true, ids, 1), atol=2e-5 * scale, rtol=0)
    assert (np.diff(scores, axis=1) >= 0).all() if measure == "squared_l2" else (np.diff(scores, axis=1) <= 0).all()


@pytest.mark.skipif(not NATIVE_BF16, reason="needs AVX-512 BF16")
@pytest.mark.parametrize("d", [2, 3, 48, 515])
@pytest.mark.parametrize("measure", MEASURES)
def test_bf16_screen_scores_points_as_a_single_query_does(rng, d, measure):
    """A screened batch rescores its bin winners with the float32 scan's own fused
    multiply-adds, so a point found by both scores bit-for-bit the same in the batch as
    in a single (unscreened) query; the winners differ only where the screen's
    rounding chose another point of a bin, in a few rows."""
    x = rng.standard_normal((5000, d)).astype(np.float32)
    q = rng.standard_normal((300, d)).astype(np.float32)
    s = annlib.builder(x, 10, measure).score_brute_force(recall_target=0.9).build() \
        .with_simd_level("avx512_bf16", bf16_variant="native")
    assert s.uses_screen() or d <= 3  # low d: the check may refuse it (d=2 dot product: used)
    ids, scores = s.search_batched(q)
    same_rows, common = 0, 0
    for i in range(0, 300, 3):
        one_ids, one_scores = s.search(q[i])
        alone = dict(zip(one_ids.tolist(), one_scores.tolist()))
        for point, score in zip(ids[i].tolist(), scores[i].tolist()):
            if point in alone:
                assert score == alone[point]
                common += 1
        same_rows += bool(np.array_equal(ids[i], one_ids))
    assert common >= 0.95 * 100 * 10
    assert same_rows >= 90


@pytest.mark.skipif(not NATIVE_BF16, reason="needs AVX-512 BF16")
@pytest.mark.parametrize("n", [72, 3000])
def test_bf16_screen_is_kept_from_small_k(rng, n):
    """Below k = 10 the bins are fewer than the screen check's and hold more points each
    (k = 1: one bin, whose winner is the top 1), so a bf16 screen would lose near-ties the
    check never saw: batches score those bins in float32, equal to single queries. Low d
    makes near-ties common (d = 1: 40% of k = 1 queries differed when the screen ran)."""
    for d, measure in [(1, "squared_l2"), (2, "squared_l2"), (2, "dot_product")]:
        x = rng.standard_normal((n, d)).astype(np.float32)
        q = (x[rng.integers(0, n, 40)] + 0.01 * rng.standard_normal((40, d))).astype(np.float32)
        for k in (1, 3):
            s = annlib.builder(x, k, measure).score_brute_force(recall_target=0.9).build() \
                .with_simd_level("avx512_bf16", bf16_variant="native")
            ids, scores = s.search_batched(q)
            for i in range(len(q)):
                one_ids, one_scores = s.search(q[i])
                np.testing.assert_array_equal(ids[i], one_ids)
                np.testing.assert_array_equal(scores[i], one_scores)


@pytest.mark.skipif(not NATIVE_BF16, reason="needs AVX-512 BF16")
def test_bf16_screen_is_refused_where_it_would_lose_recall(rng):
    """Squared L2 on tight clusters far from the origin: bf16's 2^-8 rounding of
    |q||x| exceeds the gaps between neighbours (a sample loses ~3% of the
    float32 winners), so the float32 kernel picks the winners: results equal."""
    x, q = clustered(rng, 30000, 32, nq=200)
    base = annlib.builder(x, 10, "squared_l2").score_brute_force(recall_target=0.8).build()
    native = base.with_simd_level("avx512_bf16", bf16_variant="native")
    assert not native.uses_screen()
    ids, scores = native.search_batched(q)
    plain_ids, plain_scores = base.with_simd_level("avx512").search_batched(q)
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(scores, plain_scores)
    # An exact index never screens.
    assert not annlib.builder(x, 10, "dot_product").score_brute_force().build() \
        .with_simd_level("avx512_bf16", bf16_variant="native").uses_screen()


@pytest.mark.skipif(not NATIVE_BF16, reason="needs AVX-512 BF16")
def test_bf16_screen_decision_is_carried_across_small_updates(rng):
    """The screen check (a sample searched twice) is not repeated after every upsert or
    delete: an update that at most halves or doubles the index keeps the decision, a larger
    one checks again."""
    x, q = clustered(rng, 20000, 32, nq=40)
    for measure, decision in [("squared_l2", 0), ("dot_product", None)]:
        s = annlib.builder(x, 10, measure).score_brute_force(recall_target=0.8).build() \
            .with_simd_level("avx512_bf16", bf16_variant="native")
        assert s._state.index.screen_decision() == -1  # not checked before first use
        used = s.uses_screen()
        assert decision is None or int(used) == decision
        s.upsert(np.arange(20000, 20500), x[:500] + 0.01)
        s.delete(np.arange(100))
        assert s._state.index.screen_decision() == int(used)  # carried, not re-checked
        assert s.uses_screen() == used
        plain_ids, plain_scores = s.with_simd_level("avx512").search_batched(q)
        ids, scores = s.search_batched(q)
        if not used:
            np.testing.assert_array_equal(ids, plain_ids)
    small = annlib.builder(x[:300], 10, "dot_product").score_brute_force(recall_target=0.8).build() \
        .with_simd_level("avx512_bf16", bf16_variant="native")
    small.uses_screen()
    small.upsert(np.arange(300, 5000), x[300:5000])  # grew 16x: checked again on first use
    assert small._state.index.screen_decision() == -1


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("measure", ["dot_product", "squared_l2"])
def test_int8_close_to_reference(simd_level, rng, n, d, measure):
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((40, d)).astype(np.float32)
    s = annlib.builder(x, 10, measure).score_brute_force(dtype="int8").build().with_simd_level(simd_level)
    ids, scores = s.search_batched(q)
    ref_ids, _ = exact_topk(x, q, 10, measure)
    assert recall(ids, ref_ids) >= 0.93
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    true = q64 @ x64.T
    if measure == "squared_l2":
        true = (q64**2).sum(1)[:, None] - 2 * true + (x64**2).sum(1)[None, :]
    got = np.take_along_axis(true, ids, 1)
    # Affine 8-bit codes on both sides: error well under 1% of the score range.
    assert np.abs(scores - got).max() <= 0.01 * np.abs(true).max()


def test_int8_is_exact_for_integer_valued_data(simd_level, rng):
    x = rng.integers(0, 200, (2000, 64)).astype(np.float32)
    q = rng.integers(0, 200, (30, 64)).astype(np.float32)
    s = annlib.builder(x, 10, "squared_l2").score_brute_force(dtype="int8").build().with_simd_level(simd_level)
    ids, scores = s.search_batched(q)
    ref_ids, ref_scores = exact_topk(x, q, 10, "squared_l2")
    assert recall(ids, ref_ids) >= 0.99  # ties among integer distances may reorder
    assert np.allclose(scores, ref_scores, rtol=1e-5)


def test_levels_agree_with_scalar(rng):
    x, q = clustered(rng, 4000, 96, nq=50)
    for dtype in ["float32", "bfloat16", "int8"]:
        base = annlib.builder(x, 10, "dot_product").score_brute_force(dtype=dtype).build()
        ref_ids, ref_scores = base.with_simd_level("scalar").search_batched(q)
        for level in annlib.available_simd_levels()[1:]:
            ids, scores = base.with_simd_level(level, bf16_variant="widened").search_batched(q)
            assert recall(ids, ref_ids) >= 0.98, (dtype, level)
            assert np.allclose(scores, ref_scores, rtol=1e-4, atol=1e-3), (dtype, level)


def test_binned_levels_pick_the_same_winners_on_exact_data(rng):
    """Binned selection keeps each bin's first best point (bins are W consecutive slots
    per vector, updated by masked stores on AVX2/AVX-512, lane by lane elsewhere): on small
    integers, where every level's scores are exact, every level returns the same ids and
    scores, ties and duplicates included."""
    x = rng.integers(-3, 4, (5000, 24)).astype(np.float32)
    x[rng.choice(5000, 800, replace=False)] = x[rng.choice(5000, 800)]
    q = rng.integers(-3, 4, (70, 24)).astype(np.float32)
    for measure in ["dot_product", "squared_l2"]:
        base = annlib.builder(x, 10, measure).score_brute_force(recall_target=0.8).build()
        ref_ids, ref_scores = base.with_simd_level("scalar").search_batched(q)
        for level in annlib.available_simd_levels()[1:]:
            ids, scores = base.with_simd_level(level).search_batched(q)
            np.testing.assert_array_equal(ids, ref_ids, err_msg=f"{measure} {level}")
            np.testing.assert_array_equal(scores, ref_scores, err_msg=f"{measure} {level}")


def test_unsupported_level_is_an_error():
    s = annlib.builder(np.eye(4, dtype=np.float32), 1, "dot_product").score_brute_force().build()
    with pytest.raises(ValueError, match="unknown SIMD level"):
        s.with_simd_level("sse9")


def test_read_rows_probe_reads_each_row_whole(rng):
    """_core.testing.read_rows (bench/roofline.py's random-row probe) reads every word of
    each row it is given, in any dtype, and refuses ids outside the rows."""
    rows = rng.integers(0, 2**40, (50, 8), dtype=np.uint64)
    ids = rng.integers(0, 50, 30).astype(np.int64)
    assert _core.testing.read_rows(rows, ids) == int(rows[ids].sum(dtype=np.uint64))
    as_float = rows.view(np.float32)  # same bytes, 16 float32 per row
    assert _core.testing.read_rows(as_float, ids) == int(rows[ids].sum(dtype=np.uint64))
    assert _core.testing.read_rows(rows, np.zeros(0, np.int64)) == 0
    with pytest.raises(ValueError, match="index rows"):
        _core.testing.read_rows(rows, np.array([50], np.int64))
    with pytest.raises(ValueError, match="multiple of 32"):
        _core.testing.read_rows(np.zeros((4, 3), np.float32), np.array([0], np.int64))
