"""Every dense kernel at every SIMD level against a float64 NumPy reference."""
import numpy as np
import pytest

import annlib
from annlib import _core
from conftest import clustered, exact_topk, recall, with_screen

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
    """Binned float32 on AMX, where the int8 copy is refused, picks bin winners
    with bf16x3 tile products and rescores them exactly; clustered data (|q||x|
    far above the score gaps) would defeat plain bf16. Results match the float32
    vector kernel's, also for an index without norms (saved before they
    existed), which rescores the 2k best screened winners instead of those its
    error bound admits."""
    x, q = clustered(rng, n, d, nq=nq)
    s = annlib.builder(x, 10, measure).score_brute_force(recall_target=0.9).build()
    amx_ids, amx_scores = with_screen(s.with_simd_level("avx512_bf16", bf16_variant="amx"), 1).search_batched(q)
    vec_ids, vec_scores = with_screen(s.with_simd_level("avx512"), 0).search_batched(q)  # float32 bins
    assert (amx_ids == vec_ids).mean() >= 0.995
    true = exact_scores(x, q, measure)
    scale = np.abs(true).max()
    np.testing.assert_allclose(amx_scores, vec_scores, atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(amx_scores, np.take_along_axis(true, amx_ids, 1), atol=2e-5 * scale, rtol=0)
    arrays = {key: value for key, value in s._arrays().items() if key != "norms"}
    old = annlib.BruteForceSearcher(s.config, arrays, bf16_variant="amx", format_version=1)
    old_ids, old_scores = with_screen(old, 1).search_batched(q)
    assert (old_ids == amx_ids).mean() >= 0.995
    np.testing.assert_allclose(old_scores, np.take_along_axis(true, old_ids, 1), atol=2e-5 * scale, rtol=0)


# The screens of binned float32 on this CPU: (name, level, bf16 variant, screen decision).
# The int8 copy on x86 (AMX tiles, VNNI on 512 or 256 bits, AVX-512BW or AVX2 dots); the staged bf16 screen (one
# vdpbf16ps product) only where the int8 copy is refused, reached here by fixing the decision.
SCREENS = [screen for screen in [("int8", "avx2", "auto", 2), ("int8", "avx2_vnni", "auto", 2),
                                 ("int8", "avx512", "auto", 2),
                                 ("int8", "avx512_vnni", "auto", 2), ("int8", "avx512_bf16", "native", 2),
                                 ("int8", "avx512_bf16", "widened", 2), ("bf16", "avx512_bf16", "native", 1)]
           if screen[1] in annlib.available_simd_levels()]
if _core.amx_usable():
    SCREENS.append(("int8", "avx512_bf16", "amx", 2))
SCREEN_IDS = [f"{name}-{level}-{variant}" for name, level, variant, _ in SCREENS]


def screened(base, screen):
    """base (binned float32) at the screen's level, with that screen: the int8 copy as the
    check chooses it, the staged bf16 screen as a carried decision."""
    name, level, variant, decision = screen
    s = base.with_simd_level(level, bf16_variant=variant)
    return with_screen(s, decision) if name == "bf16" else s


@pytest.mark.parametrize("screen", SCREENS, ids=SCREEN_IDS)
@pytest.mark.parametrize("kind,measure", [("gaussian", "dot_product"), ("gaussian", "cosine"),
                                          ("gaussian", "squared_l2"), ("integers", "squared_l2")])
@pytest.mark.parametrize("nq", [1, 3, 40, 600])
def test_binned_float32_screen_keeps_recall(rng, screen, kind, measure, nq):
    """Without AMX, binned float32 picks bin winners with cheaper scores where a sample says
    that loses nothing: an int8 copy of the data (a quarter of the bytes, VNNI or AVX2 dots;
    any number of queries), else one bf16 product per pair (vdpbf16ps; blocks of 16+
    queries). Winners are rescored exactly. Integer data with a range up to 254 is exact in
    int8 and up to 256 in bf16 (SIFT-like descriptors)."""
    n, d, k = 20000, 48, 10
    if kind == "integers":
        x = rng.integers(0, 200, (n, d)).astype(np.float32)
        q = rng.integers(0, 200, (nq, d)).astype(np.float32)
    else:
        x, q = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((nq, d)).astype(np.float32)
    base = annlib.builder(x, k, measure).score_brute_force(recall_target=0.9).build()
    s = screened(base, screen)
    assert s.uses_screen() and s._state.index.screen_decision() == screen[3]
    assert not base.with_simd_level("scalar").uses_screen()
    ids, scores = s.search_batched(q)
    plain_ids, _ = with_screen(s, 0).search_batched(q)
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


@pytest.mark.parametrize("screen", [s for s in SCREENS if s[0] == "int8"], ids=lambda s: f"{s[1]}-{s[2]}")
@pytest.mark.parametrize("kind", ["gaussian", "far from the origin", "integers", "outliers", "tiny", "huge"])
@pytest.mark.parametrize("d", [1, 3, 7, 48, 515])
def test_int8_screen_error_bound_holds(rng, screen, kind, d):
    """The margin the rescoring allows each int8-screened winner is twice a bound on the
    screen's error: |int8 screen score - float32 score| <= margin / 2 for every point and
    query (both metrics' biases), whatever the data's scale and spread."""
    n, nq = 700, 12
    x, q = rng.standard_normal((n, d)), rng.standard_normal((nq, d))
    if kind == "far from the origin":
        x, q = x + 50, q + 50
    elif kind == "integers":
        x, q = rng.integers(0, 255, (n, d)), rng.integers(-20, 235, (nq, d))
    elif kind == "outliers":
        x[:, 0] *= 1000
        q[:, -1] *= 1e4
    elif kind == "tiny":
        x, q = x * 1e-19, q * 1e-19
    elif kind == "huge":
        x, q = x * 1e15, q * 1e15
    x, q = x.astype(np.float32), q.astype(np.float32)
    for squared_l2 in (False, True):
        approx, exact, margin = _core.testing.int8_screen_errors(x, q, squared_l2, screen[1], screen[2])
        error = np.abs(approx.astype(np.float64) - exact)
        assert (error <= margin / 2).all(), (error / margin).max()
        if kind == "integers":  # exact codes: only float32 rounding separates the two
            assert (error <= 2.0**-20 * np.abs(exact).max()).all()


@pytest.mark.parametrize("screen", SCREENS, ids=SCREEN_IDS)
@pytest.mark.parametrize("d", [2, 3, 48, 515])
@pytest.mark.parametrize("measure", MEASURES)
def test_screen_scores_points_as_a_single_query_does(rng, screen, d, measure):
    """A screened batch rescores its bin winners with the float32 scan's own fused
    multiply-adds, so a point found by both scores bit-for-bit the same in the batch as
    in a single query (unscreened for the staged screen, int8-screened too for the int8
    copy); the winners differ only where the screen's rounding chose another point of a
    bin, in a few rows."""
    x = rng.standard_normal((5000, d)).astype(np.float32)
    q = rng.standard_normal((300, d)).astype(np.float32)
    s = screened(annlib.builder(x, 10, measure).score_brute_force(recall_target=0.9).build(), screen)
    assert s.uses_screen() or d <= 3  # low d: the check may refuse the int8 copy
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
    if s._state.index.screen_decision() == 2:  # screened alike: the very same rows
        assert same_rows == 100
    elif d > 3:  # (at d <= 3 the check would refuse the bf16 screen that is forced here)
        assert common >= 0.95 * 100 * 10
        assert same_rows >= 90


@pytest.mark.parametrize("screen", SCREENS, ids=SCREEN_IDS)
def test_int8_screen_without_norms_rescores_the_best_winners(rng, screen):
    """An index saved before norms existed (format 1) has no error bound: the 2k best
    screened winners are rescored. Recall stays that of the float32 bins."""
    x, q = rng.standard_normal((20000, 32)).astype(np.float32), rng.standard_normal((200, 32)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.9).build()
    arrays = {key: value for key, value in s._arrays().items() if key != "norms"}
    old = annlib.BruteForceSearcher(s.config, arrays, simd_level=screen[1], bf16_variant=screen[2], format_version=1)
    old = with_screen(old, screen[3])
    ids, scores = old.search_batched(q)
    plain_ids, _ = with_screen(old, 0).search_batched(q)
    assert (ids == plain_ids).mean() >= 0.99
    true = exact_scores(x, q, "dot_product")
    np.testing.assert_allclose(scores, np.take_along_axis(true, ids, 1), atol=2e-5 * np.abs(true).max(), rtol=0)


@pytest.mark.parametrize("screen", SCREENS, ids=SCREEN_IDS)
@pytest.mark.parametrize("n", [72, 3000])
def test_small_k_screens_only_with_the_checks_bins(rng, screen, n):
    """Below k = 10 the bins are fewer than the screen check's and hold more points each
    (k = 1: one bin, whose winner is the top 1), so a screen would lose near-ties the check
    never saw (d = 1: 40% of k = 1 queries differed when the bf16 screen ran with k's bins).
    The int8 copy screens such calls with the check's bins instead (more bins: a higher recall;
    its results are the top k of a k = 10 search over float32 bins where the copy is exact,
    and single queries equal the batch); a staged screen leaves them to float32 bins. Low d
    makes near-ties common."""
    for d, measure in [(1, "squared_l2"), (2, "squared_l2"), (2, "dot_product")]:
        x = rng.standard_normal((n, d)).astype(np.float32)
        q = (x[rng.integers(0, n, 40)] + 0.01 * rng.standard_normal((40, d))).astype(np.float32)
        for k in (1, 3):
            s = screened(annlib.builder(x, k, measure).score_brute_force(recall_target=0.9).build(), screen)
            ids, scores = s.search_batched(q)
            plain = with_screen(s, 0)
            int8 = s._state.index.screen_decision() == 2 and s.num_bins(10) > 0
            reference = plain.search_batched(q, final_num_neighbors=10) if int8 else plain.search_batched(q)
            if int8 and d == 1:  # one dimension: the int8 copy is exact (a point is its own offset)
                np.testing.assert_array_equal(ids, reference[0][:, :k])
                np.testing.assert_array_equal(scores, reference[1][:, :k])
            elif int8:
                assert (ids == reference[0][:, :k]).mean() >= 0.95
            else:
                np.testing.assert_array_equal(ids, reference[0])
                np.testing.assert_array_equal(scores, reference[1])
            for i in range(len(q)):
                one_ids, one_scores = s.search(q[i])
                np.testing.assert_array_equal(ids[i], one_ids)
                np.testing.assert_array_equal(scores[i], one_scores)


def test_small_k_gains_the_int8_screen_without_losing_recall(rng):
    """k = 1 and 5 at recall_target 0.9 search single queries and batches through the int8
    copy (x86), with the bins of k = 10: recall at least that of float32 bins for k itself."""
    if not any(s[0] == "int8" for s in SCREENS):
        pytest.skip("no int8 screen at this CPU's levels")
    x = rng.standard_normal((20000, 48)).astype(np.float32)
    q = rng.standard_normal((300, 48)).astype(np.float32)
    true = exact_scores(x, q, "dot_product")
    for k in (1, 5):
        s = annlib.builder(x, k, "dot_product").score_brute_force(recall_target=0.9).build()
        assert s._state.index.screen_decision() == 2
        ids, _ = s.search_batched(q)
        plain_ids, _ = with_screen(s, 0).search_batched(q)
        truth = np.argsort(-true, 1)[:, :k]
        hits = lambda found: np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth)]) / k
        assert hits(ids) >= hits(plain_ids) - 0.005 and hits(ids) >= 0.9


@pytest.mark.parametrize("level,variant", sorted({(s[1], s[2]) for s in SCREENS}))
def test_screens_are_refused_where_they_would_lose_recall(rng, level, variant):
    """Squared L2 on tight clusters far from the origin: int8's and bf16's rounding of
    |q||x| exceeds the gaps between neighbours (a sample loses a few % of the float32
    winners), so the float32 kernel picks the winners: results equal. On AMX the int8 copy
    is refused and the bf16x3 tile screen, which needs no check, takes its place
    (test_binned_float32_screened_on_amx_matches_vector_kernel)."""
    x, q = clustered(rng, 30000, 32, nq=200)
    base = annlib.builder(x, 10, "squared_l2").score_brute_force(recall_target=0.8).build()
    s = base.with_simd_level(level, bf16_variant=variant)
    if variant == "amx":
        assert s.uses_screen() and s._state.index.screen_decision() == 1
        return
    assert not s.uses_screen() and s._state.index.screen_decision() == 0
    ids, scores = s.search_batched(q)
    plain_ids, plain_scores = with_screen(s, 0).search_batched(q)
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(scores, plain_scores)
    # An exact index never screens.
    assert not annlib.builder(x, 10, "dot_product").score_brute_force().build() \
        .with_simd_level(level, bf16_variant=variant).uses_screen()


@pytest.mark.parametrize("level,variant", sorted({(s[1], s[2]) for s in SCREENS}))
def test_int8_screen_refused_past_its_dimension_limit(rng, level, variant):
    """The int8 kernels' int32 sums hold up to ~66,000 dimensions of products: a wider index
    never screens with an int8 copy (the staged bf16 screen may take its place)."""
    x = rng.standard_normal((100, 70000)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.9).build() \
        .with_simd_level(level, bf16_variant=variant)
    s.uses_screen()
    assert s._state.index.screen_decision() in (0, 1)
    ids, _ = s.search_batched(x[:20])
    assert (ids[:, 0] == np.arange(20)).all()


@pytest.mark.parametrize("level,variant", sorted({(s[1], s[2]) for s in SCREENS}))
def test_screen_decision_is_carried_across_small_updates(rng, level, variant):
    """The screen check (a sample searched twice) and the screen's data are made by the build
    and by every update, not by the next search; an update that at most halves or doubles the
    index keeps the check's answer, a larger one checks again. Where the int8 copy is refused,
    AMX takes its bf16x3 screen (no check) and the others none."""
    x, q = clustered(rng, 20000, 32, nq=40)
    g = rng.standard_normal((20000, 32)).astype(np.float32)
    for data, measure, decision in [(x, "squared_l2", 1 if variant == "amx" else 0), (g, "dot_product", 2)]:
        built = annlib.builder(data, 10, measure).score_brute_force(recall_target=0.8).build()
        assert built._state.index.screen_decision() != -1  # checked by the build
        s = built.with_simd_level(level, bf16_variant=variant)
        assert s._state.index.screen_decision() == -1  # another level's kernels: checked at first use
        assert s.uses_screen() == bool(decision) and s._state.index.screen_decision() == decision
        s.upsert(np.arange(20000, 20500), data[:500] + 0.01)
        s.delete(np.arange(100))
        assert s._state.index.screen_decision() == decision  # carried, made by the update
        assert s.uses_screen() == bool(decision)
        plain_ids, plain_scores = with_screen(s, 0).search_batched(q)
        ids, scores = s.search_batched(q)
        if not decision:
            np.testing.assert_array_equal(ids, plain_ids)
        else:
            assert (ids == plain_ids).mean() >= 0.99
    # Carried, not checked again: a fixed choice of the staged screen survives a small update
    # (a check would choose the int8 copy on this data) and a 16x growth checks again.
    small = with_screen(annlib.builder(g[:300], 10, "dot_product").score_brute_force(recall_target=0.8).build()
                        .with_simd_level(level, bf16_variant=variant), 1 if variant == "native" else 0)
    carried = small._state.index.screen_decision()
    small.upsert(np.arange(300, 400), g[300:400])
    assert small._state.index.screen_decision() == carried
    small.upsert(np.arange(400, 5000), g[400:5000])
    assert small._state.index.screen_decision() == 2


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
