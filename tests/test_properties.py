"""Property-based tests over small random indexes (hypothesis): every metric, SOAR on and
off, filters, updates, every SIMD level, odd dimensions, tiny sizes, ties and duplicate
points. What must hold for every one of them:

- every result row holds distinct, valid ids, best first;
- search_batched equals per-row search (both of its paths);
- with every leaf searched and every candidate reordered the answer is exact;
- a saved and loaded index answers exactly as the original;
- the parts of a sharded search (leaves chosen once, shards' candidates merged) give
  what one search gives;
- the tuner's rank table from one pass (ah_ranks) equals a search per leaf count.

Two profiles, both in the suite CI runs: the default one draws 30 cases per property
(derandomized), the long one (marker `slow`; `pytest -m "not slow"` leaves it out) 600,
from a fixed seed so a failure in CI reproduces; ANNLIB_PROPERTY_SEED=N draws other cases.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import annlib
from conftest import positions_per_leaf_count, with_screen

MEASURES = ["dot_product", "squared_l2", "cosine"]
LEVELS = annlib.available_simd_levels()


class Case:
    """A small database with ties, queries, and the build and search settings of one example."""

    def __init__(self, data):
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        rng = np.random.default_rng(seed)
        self.n = data.draw(st.integers(1, 250), label="n")
        self.d = data.draw(st.sampled_from([1, 2, 3, 5, 8, 12, 17, 33]), label="d")
        self.measure = data.draw(st.sampled_from(MEASURES), label="measure")
        self.level = data.draw(st.sampled_from(LEVELS), label="simd level")
        grid = data.draw(st.booleans(), label="integer grid (many ties)")
        if grid:
            x = rng.integers(-2, 3, (self.n, self.d)).astype(np.float32)
        else:
            x = rng.standard_normal((self.n, self.d)).astype(np.float32)
        duplicates = data.draw(st.integers(0, self.n // 2), label="duplicated rows")
        if duplicates:
            x[rng.choice(self.n, duplicates, replace=False)] = x[rng.choice(self.n, duplicates)]
        if self.measure == "cosine":
            x[np.all(x == 0, axis=1)] = 1.0  # cosine of a zero vector is undefined
        self.x = x
        nq = data.draw(st.integers(1, 20), label="queries")
        q = x[rng.integers(self.n, size=nq)] + (0 if grid else 0.1) * rng.standard_normal((nq, self.d))
        q = q.astype(np.float32)
        if self.measure == "cosine":
            q[np.all(q == 0, axis=1)] = 1.0
        self.q = q
        self.k = data.draw(st.integers(1, min(self.n, 12)), label="k")
        self.ids = None
        if data.draw(st.booleans(), label="own ids"):
            self.ids = rng.choice(10 * self.n + 10, self.n, replace=False).astype(np.int64)
        self.quantized = data.draw(st.booleans(), label="quantized")
        if self.quantized:
            self.num_leaves = data.draw(st.integers(1, min(self.n, 10)), label="leaves")
            self.soar = data.draw(st.sampled_from([None, 1.0, 2.0]), label="soar lambda")
            self.dpb = data.draw(st.sampled_from([b for b in (1, 2, 3, 4) if self.d % b == 0]), label="dims/block")
        else:
            self.recall_target = data.draw(st.sampled_from([1.0, 0.9]), label="recall target")
            self.dtype = data.draw(st.sampled_from(["float32", "bfloat16", "int8"]), label="dtype")

    def build(self, x=None, ids=None):
        x = self.x if x is None else x
        ids = self.ids if ids is None else ids
        b = annlib.builder(x, self.k, self.measure, ids=ids)
        if self.quantized:
            b = b.tree(self.num_leaves, min(2, self.num_leaves), soar_lambda=self.soar).score_ah(self.dpb).reorder(self.k)
            return b.build(progress=False).with_simd_level(self.level)
        return b.score_brute_force(self.recall_target, dtype=self.dtype).build().with_simd_level(self.level)

    def knobs(self, data, index):
        if not self.quantized:
            return {}
        return {"leaves_to_search": data.draw(st.integers(1, index.num_leaves), label="leaves searched"),
                "pre_reorder_num_neighbors": data.draw(st.integers(self.k, self.n + 5), label="reordered")}

    def exhaustive(self, index):
        return {"leaves_to_search": index.num_leaves, "pre_reorder_num_neighbors": max(self.k, index.size())} \
            if self.quantized else {}

    @property
    def exact_capable(self):
        """Exact search scores exactly: float32 everywhere, every point considered."""
        return self.quantized or (self.recall_target == 1.0 and self.dtype == "float32")

    def user_ids(self):
        return np.arange(self.n) if self.ids is None else self.ids


def true_scores(case, x, q):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if case.measure == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if case.measure == "squared_l2":
        return -((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)  # larger is better
    return q64 @ x64.T


def check_rows(case, ids, scores, allowed_ids):
    """Distinct, valid, best-first rows; padding only when fewer than k points qualify."""
    larger_is_better = case.measure != "squared_l2"
    for row, srow in zip(ids, scores):
        real = row[row >= 0]
        assert len(np.unique(real)) == len(real), f"an id came back twice: {row}"
        assert np.isin(real, allowed_ids).all(), f"an id the index does not hold: {row}"
        assert (row[len(real):] == -1).all(), "padding is only at the end"
        assert len(real) == min(case.k, len(allowed_ids)), (row, len(allowed_ids))
        s = srow[:len(real)]
        assert np.all(s[:-1] >= s[1:]) if larger_is_better else np.all(s[:-1] <= s[1:]), srow


def assert_exact(case, ids, x, row_ids, q):
    """Tie-aware: each returned point scores within rounding of the k-th best true score."""
    truth = true_scores(case, x, q)
    position = {int(i): j for j, i in enumerate(row_ids)}
    scale = 1e-4 * (1.0 + np.abs(truth).max())
    for r, row in enumerate(ids):
        kth = np.sort(truth[r])[::-1][min(case.k, len(row_ids)) - 1]
        got = truth[r, [position[int(i)] for i in row if i >= 0]]
        assert (got >= kth - scale).all(), (row, got, kth)


def batched_equals_single(case, index, knobs, **filters):
    ids, scores = index.search_batched(case.q, **knobs, **filters)
    # With AMX, bfloat16 batches of 4 or more queries run on tiles that round the query to
    # bfloat16 too (README, Brute force): there the single-query scores agree within
    # bfloat16 rounding rather than bit for bit.
    rounded = not case.quantized and case.dtype == "bfloat16" and annlib._core.amx_usable() and len(case.q) >= 4
    for i, query in enumerate(case.q):
        for q in (query, query.astype(np.float64)):  # the float32 fast path and the general path
            one_ids, one_scores = index.search(q, **knobs, **filters)
            if rounded:
                # Rounding the query moves <q, x> by up to 2^-8 |q| |x|, which can be far more
                # than a score near 0 (squared L2 between close points): bound by the terms' size.
                # (Finite scores only: a row with fewer than k results pads with -inf, which
                # would make the tolerance infinite and the check vacuous.)
                finite = scores[i][np.isfinite(scores[i])]
                terms = np.abs(finite).max(initial=0.0) + \
                    2 * np.linalg.norm(query) * np.linalg.norm(case.x, axis=1).max()
                np.testing.assert_allclose(one_scores, scores[i], rtol=2**-6, atol=2**-6 * terms)
                continue
            np.testing.assert_array_equal(one_ids, ids[i])
            np.testing.assert_array_equal(one_scores, scores[i])
    return ids, scores


# -- the properties ------------------------------------------------------------

def distinct_ids_and_batched_equals_single(data):
    case = Case(data)
    index = case.build()
    ids, scores = batched_equals_single(case, index, case.knobs(data, index))
    check_rows(case, ids, scores, case.user_ids())


def exhaustive_search_is_exact(data):
    case = Case(data)
    index = case.build()
    ids, scores = index.search_batched(case.q, **case.exhaustive(index))
    check_rows(case, ids, scores, case.user_ids())
    if case.exact_capable:
        assert_exact(case, ids, case.x, case.user_ids(), case.q)


def filtered_search(data):
    case = Case(data)
    index = case.build()
    held = case.user_ids()
    allowed = held[np.asarray(data.draw(st.lists(st.booleans(), min_size=case.n, max_size=case.n),
                                        label="allowed"), dtype=bool)]
    strays = np.array([10 * case.n + 11, 10 * case.n + 99])  # ids the index does not hold are ignored
    allowlist = np.concatenate([allowed, strays])
    if len(allowed) == 0:
        ids, _ = index.search_batched(case.q, allowlist=allowlist)
        assert (ids == -1).all()
        return
    ids, scores = batched_equals_single(case, index, case.exhaustive(index), allowlist=allowlist)
    check_rows(case, ids, scores, allowed)
    if case.exact_capable:
        rows = np.flatnonzero(np.isin(held, allowed))
        assert_exact(case, ids, case.x[rows], held[rows], case.q)
    denied, _ = index.search_batched(case.q, denylist=allowed)
    assert not np.isin(denied, allowed).any()


def updates_then_search(data):
    case = Case(data)
    if not case.quantized:
        return  # updates need a quantized index (brute force refuses them, tested elsewhere)
    index = case.build()
    held = case.user_ids()
    gone = held[np.asarray(data.draw(st.lists(st.booleans(), min_size=case.n, max_size=case.n),
                                     label="deleted"), dtype=bool)]
    if len(gone) == case.n:
        gone = gone[1:]  # keep at least one point
    index.delete(gone)
    rng = np.random.default_rng(len(gone))
    added = data.draw(st.integers(0, 30), label="upserted")
    new_ids = np.arange(10**6, 10**6 + added)
    new_x = case.x[rng.integers(case.n, size=added)] + rng.standard_normal((added, case.d)).astype(np.float32)
    if case.measure == "cosine":
        new_x[np.all(new_x == 0, axis=1)] = 1.0
    index.upsert(new_ids, new_x)
    keep = ~np.isin(held, gone)
    live_ids = np.concatenate([held[keep], new_ids])
    live_x = np.concatenate([case.x[keep], new_x])
    if case.k > len(live_ids):  # the build's k exceeds the points left: refused, so ask for fewer
        with pytest.raises(ValueError, match="exceeds the number of indexed points"):
            index.search_batched(case.q)
        case.k = len(live_ids)
        index.set_default_params(annlib.SearchParams(index.num_leaves, max(case.k, index.size()), case.k))
    ids, scores = batched_equals_single(case, index, case.exhaustive(index))
    check_rows(case, ids, scores, live_ids)
    assert_exact(case, ids, live_x, live_ids, case.q)


def save_and_load_answer_identically(data):
    import tempfile

    case = Case(data)
    index = case.build()
    knobs = case.knobs(data, index)
    before = index.search_batched(case.q, **knobs)
    with tempfile.TemporaryDirectory() as tmp:
        index.save(f"{tmp}/idx")
        for mmap in (True, False):
            after = annlib.load(f"{tmp}/idx", mmap=mmap).with_simd_level(case.level).search_batched(case.q, **knobs)
            np.testing.assert_array_equal(after[0], before[0])
            np.testing.assert_array_equal(after[1], before[1])


def shard_parts_merge_to_one_search(data):
    """The engine's parts of a sharded search (annlib.distributed) give what one search gives:
    the leaves chosen once, each "shard" (a random set of leaves) scanning only its own,
    the answers merged with each point's storage position as the tie-break key."""
    case = Case(data)
    if not case.quantized:
        return
    index = case.build()
    knobs = case.knobs(data, index)
    leaves, pre = knobs["leaves_to_search"], knobs["pre_reorder_num_neighbors"]
    expected_ids, expected_scores = index.search_batched(case.q, **knobs)
    num_shards = data.draw(st.integers(1, 3), label="shards")
    owner = np.asarray(data.draw(st.lists(st.integers(0, num_shards - 1), min_size=index.num_leaves,
                                          max_size=index.num_leaves), label="leaf owners"))
    probe_leaves, probe_scores = index.choose_leaves(case.q, leaves)
    wanted = min(pre, index.size())
    answers = [index.shard_candidates(case.q, np.where(owner[probe_leaves] == s, probe_leaves, -1), probe_scores,
                                      wanted) for s in range(num_shards)]
    ids, approx, reordered = (np.concatenate([a[j] for a in answers], axis=1) for j in range(3))
    position = {int(i): j for j, i in enumerate(case.user_ids())}  # build order = storage order
    keys = np.vectorize(lambda i: position.get(int(i), -1), otypes=[np.int64])(ids)
    merged_ids, raw = annlib._core.merge_candidates(ids, approx, reordered, wanted, case.k, keys=keys)
    found = (merged_ids >= 0).sum(axis=1)
    if (found < case.k).any():
        return  # one index fills such queries in exactly (tested with the sharded index itself)
    np.testing.assert_array_equal(merged_ids, expected_ids)
    np.testing.assert_array_equal(annlib._core.raw_to_metric(case.q, raw, case.measure), expected_scores)


# Binned float32's screens on this CPU: (level, bf16 variant, decision): the int8 copy as the
# index's check picks it, the staged bf16 screen (bf16x3 tiles on AMX) fixed as a carried decision.
SCREENS = [screen for screen in [("avx2", "auto", 2), ("avx2_vnni", "auto", 2), ("avx512", "auto", 2),
                                 ("avx512_vnni", "auto", 2),
                                 ("avx512_bf16", "native", 2),
                                 ("avx512_bf16", "widened", 2),
                                 ("avx512_bf16", "native", 1)] if screen[0] in LEVELS] + \
    ([("avx512_bf16", "amx", 2), ("avx512_bf16", "amx", 1)] if annlib._core.amx_usable() else [])


def screens_equal_float32_on_exact_data(data):
    """Binned float32 screens bin winners with cheaper scores: an int8 copy of the data (x86
    levels), or bf16 products. On small integers (exact in int8 and bf16, exact float32 sums) a
    screen must pick the very winners the float32 kernel picks, ties and duplicates included:
    ids and scores equal, in batches and in single queries. (A screen runs on indexes large
    enough to sample, the int8 copy below k = 10 with k = 10's bins, a staged one only from
    k = 10; elsewhere the search scores in float32, and must equal it all the more.)"""
    if not SCREENS:
        return
    level, variant, decision = data.draw(st.sampled_from(SCREENS), label="screen")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    n = data.draw(st.integers(1, 2500), label="n")
    d = data.draw(st.sampled_from([1, 2, 3, 7, 16, 33, 64]), label="d")
    spread = data.draw(st.sampled_from([1, 3, 8]), label="value range")
    x = rng.integers(-spread, spread + 1, (n, d)).astype(np.float32)
    duplicates = data.draw(st.integers(0, n // 2), label="duplicated rows")
    if duplicates:
        x[rng.choice(n, duplicates, replace=False)] = x[rng.choice(n, duplicates)]
    nq = data.draw(st.integers(16, 80), label="queries")
    q = rng.integers(-spread, spread + 1, (nq, d)).astype(np.float32)
    measure = data.draw(st.sampled_from(["dot_product", "squared_l2"]), label="measure")
    k = data.draw(st.integers(1, min(n, 20)), label="k")
    target = data.draw(st.sampled_from([0.5, 0.8, 0.9, 0.99]), label="recall target")
    base = annlib.builder(x, k, measure).score_brute_force(target).build().with_simd_level(level, variant)
    screened = with_screen(base, decision) if decision == 1 else base
    if decision == 2 and base.num_bins(min(10, n)) > 0 and n >= 2:  # the check's sample: 10 neighbours of held-out points
        assert screened.uses_screen(num_threads=1) and screened._state.index.screen_decision() == 2
    # One thread: the whole batch is one block, large enough for the staged screen.
    ids, scores = screened.search_batched(q, num_threads=1)
    # Below k = 10 the int8 copy screens with the bins of k = 10: the top k of that search.
    wide = k < 10 and screened._state.index.screen_decision() == 2 and base.num_bins(10) > 0
    plain_ids, plain_scores = with_screen(base, 0).search_batched(q, max(k, 10) if wide else k, num_threads=1)
    plain_ids, plain_scores = plain_ids[:, :k], plain_scores[:, :k]
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_array_equal(scores, plain_scores)
    for i in range(0, nq, 7):
        one_ids, one_scores = screened.search(q[i])
        np.testing.assert_array_equal(one_ids, plain_ids[i])
        np.testing.assert_array_equal(one_scores, plain_scores[i])


def ah_ranks_equal_a_search_per_leaf_count(data):
    """The tuner's rank table from one pass over each query's leaves (ah_ranks) equals the
    positions a search of each leaf count of the grid gives (ah_candidates), at any depth,
    for wanted ids held, repeated, deleted or never held."""
    case = Case(data)
    if not case.quantized:
        return
    index = case.build()
    held = case.user_ids()
    if data.draw(st.booleans(), label="delete some") and case.n > 1:
        gone = data.draw(st.lists(st.sampled_from(list(held)), min_size=1, max_size=case.n - 1, unique=True),
                         label="deleted")
        index.delete(np.asarray(gone, np.int64))
    pool = np.concatenate([held, [-1, 10 * case.n + 11]]).astype(np.int64)  # -1: no id; then one never held
    m = data.draw(st.integers(1, 6), label="wanted per query")
    wanted = np.asarray(data.draw(st.lists(st.sampled_from(list(pool)), min_size=len(case.q) * m,
                                           max_size=len(case.q) * m), label="wanted"), np.int64)
    wanted = wanted.reshape(len(case.q), m)
    grid = np.asarray(sorted(data.draw(st.sets(st.integers(1, index.num_leaves), min_size=1), label="leaf grid")))
    count = data.draw(st.integers(1, max(1, index.size())), label="depth")
    got = index.ah_ranks(case.q, grid, count, wanted, num_threads=data.draw(st.sampled_from([1, 2]), label="threads"))
    np.testing.assert_array_equal(got, positions_per_leaf_count(index, case.q, grid, count, wanted, num_threads=0))


PROPERTIES = [distinct_ids_and_batched_equals_single, exhaustive_search_is_exact, filtered_search,
              updates_then_search, save_and_load_answer_identically, shard_parts_merge_to_one_search,
              screens_equal_float32_on_exact_data, ah_ranks_equal_a_search_per_leaf_count]

# Two profiles of each property (see the module's docstring).
LONG_PROFILE_SEED = int(os.environ.get("ANNLIB_PROPERTY_SEED", "20261201"))
for _prop in PROPERTIES:
    for _suffix, _mark, _settings in (
            ("", None, settings(max_examples=30, derandomize=True, deadline=None, database=None,
                                suppress_health_check=[HealthCheck.too_slow])),
            ("_long", pytest.mark.slow, settings(max_examples=600, deadline=None, database=None,
                                                 suppress_health_check=[HealthCheck.too_slow]))):
        _test = _settings(given(st.data())(_prop))
        if _mark is not None:
            _test = _mark(seed(LONG_PROFILE_SEED)(_test))
        _test.__name__ = f"test_{_prop.__name__}{_suffix}"
        globals()[_test.__name__] = _test
