"""The engine's parts of a sharded search, in one process (no Ray; what the sanitizer builds
run): leaves chosen once, shards' candidates with filters and the exact path, the merge,
the plan from counts, and bad arguments refused with a clear error."""
import numpy as np
import pytest

import annlib
from annlib import _core
from conftest import clustered


@pytest.fixture(scope="module", params=["dot_product", "squared_l2", "cosine"])
def index(request):
    rng = np.random.default_rng(3)
    x, q = clustered(rng, 3000, 24, nq=60)
    searcher = (annlib.builder(x, 10, request.param).tree(30, 6, soar_lambda=1.0).score_ah(2, 0.2).reorder(40)
                .build(progress=False))
    return searcher, q


def _split(searcher, q, owner, wanted, **filters):
    leaves, scores = searcher.choose_leaves(q, 6)
    parts = [searcher.shard_candidates(q, np.where(owner[leaves] == s, leaves, -1), scores, wanted, **filters)
             for s in range(owner.max() + 1)]
    return [np.concatenate([p[j] for p in parts], axis=1) for j in range(3)]


def test_split_leaves_merge_to_one_search_with_filters(index):
    searcher, q = index
    owner = np.arange(searcher.num_leaves) % 3
    for filters in ({}, {"allowlist": np.arange(0, 3000, 4)}, {"denylist": np.arange(0, 3000, 2)},
                    {"allowlist": np.arange(3000) % 5 == 0}):
        ids, approx, exact = _split(searcher, q, owner, 40, **filters)
        merged, raw = _core.merge_candidates(ids, approx, exact, 40, 10)  # keys: the ids (built in id order)
        want_ids, want_scores = searcher.search_batched(q, leaves_to_search=6, **filters)
        full = (merged >= 0).all(axis=1)  # queries one index would fill in exactly are not compared
        np.testing.assert_array_equal(merged[full], want_ids[full])
        np.testing.assert_array_equal(_core.raw_to_metric(q, raw, searcher.distance_measure)[full],
                                      want_scores[full])


def test_top_k_of_every_leaf_is_the_one_index_answer(index):
    """A query whose leaves all lie on one shard is answered there as one index answers it
    (shard_candidates with top_k): the same ids and scores, best first, filters included."""
    searcher, q = index
    leaves, scores = searcher.choose_leaves(q, 6)
    for filters in ({}, {"allowlist": np.arange(0, 3000, 4)}, {"denylist": np.arange(0, 3000, 2)}):
        ids, approx, raw, _ = searcher.shard_candidates(q, leaves, scores, 40, top_k=10, **filters)
        assert approx is None and ids.shape == raw.shape == (len(q), 10)
        want_ids, want_scores = searcher.search_batched(q, 10, 40, 6, **filters)
        full = (ids >= 0).all(axis=1)  # queries one index would fill in exactly are not compared
        assert full.mean() > 0.5
        np.testing.assert_array_equal(ids[full], want_ids[full])
        np.testing.assert_array_equal(_core.raw_to_metric(q, raw, searcher.distance_measure)[full],
                                      want_scores[full])
    with pytest.raises(ValueError, match="top_k"):
        searcher.shard_candidates(q, None, None, 10, exact=True, top_k=5)


def test_exact_candidates_are_the_exact_top_k(index):
    searcher, q = index
    ids, approx, exact, allowed = searcher.shard_candidates(q, None, None, 10, exact=True,
                                                           allowlist=np.arange(0, 3000, 50))
    assert allowed == 60 and np.array_equal(approx, exact)
    truth = annlib.builder(searcher.vectors(np.arange(0, 3000, 50)), 10, searcher.distance_measure,
                           ids=np.arange(0, 3000, 50)).score_brute_force().build().search_batched(q)[0]
    merged, _ = _core.merge_candidates(ids, approx, exact, 10, 10)
    assert (merged == truth).mean() > 0.99
    empty = searcher.shard_candidates(q, None, None, 10, exact=True, allowlist=[])
    assert (empty[0] == -1).all() and empty[3] == 0


def test_compiled_filters_give_the_shard_what_their_lists_give(index):
    searcher, q = index
    leaves, scores = searcher.choose_leaves(q, 6)
    for lists in ({"allowlist": np.arange(0, 3000, 4)}, {"allowlist": np.arange(0, 3000, 50), "denylist": [0, 50]}):
        compiled = searcher.compile_filter(**lists)
        assert searcher.allowed_count(compiled) == searcher.allowed_count(**lists)
        for probes in ((leaves, scores), (None, None)):  # the probed leaves, and the exact path
            exact = probes[0] is None
            want = searcher.shard_candidates(q, *probes, 40, exact=exact, **lists)
            got = searcher.shard_candidates(q, *probes, 40, exact=exact, allowlist=compiled)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
    # After an update the compiled filter is stale: it is recompiled, and counts the new point.
    other = (annlib.builder(searcher.vectors(np.arange(3000)), 10, searcher.distance_measure).tree(30, 6)
             .score_ah(2).reorder(40).build(progress=False))
    compiled = other.compile_filter(allowlist=[1, 2, 5000])
    assert other.allowed_count(compiled) == 2
    other.upsert([5000], q[:1])
    assert other.allowed_count(compiled) == 3
    ids = other.shard_candidates(q[:1], None, None, 3, exact=True, allowlist=compiled)[0]
    assert sorted(ids[0]) == [1, 2, 5000]
    with pytest.raises(ValueError, match="another index"):
        searcher.shard_candidates(q, None, None, 10, exact=True, allowlist=compiled)


def test_bad_probes_and_arguments_are_refused(index):
    searcher, q = index
    leaves, scores = searcher.choose_leaves(q, 4)
    with pytest.raises(ValueError, match="out of range"):
        searcher.shard_candidates(q, np.full_like(leaves, searcher.num_leaves), scores, 10)
    bad = scores.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        searcher.shard_candidates(q, leaves, bad, 10)
    with pytest.raises(ValueError, match="shape"):
        searcher.shard_candidates(q, leaves[:, :2], scores, 10)
    with pytest.raises(ValueError, match="leaves_to_search"):
        searcher.choose_leaves(q, searcher.num_leaves + 1)
    with pytest.raises(ValueError, match="NaN"):
        searcher.choose_leaves(np.full_like(q, np.nan), 4)
    # Every probe skipped: nothing found, nothing read out of bounds.
    none = searcher.shard_candidates(q, np.full_like(leaves, -1), scores, 10**9)
    assert (none[0] == -1).all()
    with pytest.raises(ValueError, match="shape"):
        _core.merge_candidates(np.zeros((2, 3), np.int64), np.zeros((2, 4), np.float32),
                               np.zeros((2, 3), np.float32), 3, 2)
    with pytest.raises(ValueError):
        _core.plan_search(10, 8, 4, 100, True, 5, 50, True, 11, 20)


def test_plan_from_counts_matches_one_index(index):
    searcher, _ = index
    n, slots = searcher.size(), searcher.total_slots()
    assert _core.plan_search(searcher.num_leaves, searcher.dim, 12, slots, False, n, n, True, 6, 40) == (False, 6)
    exact, leaves = _core.plan_search(searcher.num_leaves, searcher.dim, 12, slots, True, 30, n, True, 6, 40)
    assert exact  # a filter allowing 1% is searched exactly
    exact, leaves = _core.plan_search(searcher.num_leaves, searcher.dim, 12, slots, True, n // 4, n, True, 6, 40)
    assert not exact and leaves == 12  # a quarter: twice the leaves (6 / sqrt(1/4))
    assert searcher.allowed_count(allowlist=np.arange(0, 3000, 3)) == 1000


def test_merge_of_distinct_candidates_skips_nothing():
    # One shard's own answer has no repeated key: the merge without deduplication returns
    # what the full merge does, ties (repeated scores) included.
    rng = np.random.default_rng(11)
    nq, width = 50, 40
    keys = np.stack([rng.permutation(1000)[:width] for _ in range(nq)]).astype(np.int64)
    keys[::7, -5:] = -1  # padding
    approx = np.round(rng.standard_normal((nq, width)), 1).astype(np.float32)
    exact = np.round(rng.standard_normal((nq, width)), 1).astype(np.float32)
    ids = keys * 3
    for wanted, k in ((40, 10), (12, 5), (3, 7)):
        full = _core.merge_candidates(ids, approx, exact, wanted, k, keys=keys)
        fast = _core.merge_candidates(ids, approx, exact, wanted, k, keys=keys, distinct=True)
        np.testing.assert_array_equal(fast[0], full[0])
        np.testing.assert_array_equal(fast[1], full[1])


def _fan_out(owner, leaves):
    return np.mean([len(np.unique(owner[row])) for row in leaves])


@pytest.mark.parametrize("num_shards", [2, 3, 4, 7])
def test_neighbouring_leaves_share_a_shard_and_shards_stay_balanced(index, num_shards):
    from annlib.distributed.routing import assign_leaves
    searcher, q = index
    rng = np.random.default_rng(num_shards)
    sizes = rng.integers(50, 150, searcher.num_leaves)
    centers = np.asarray(searcher._state.arrays["centroids"])[:, :searcher.dim]
    grouped = assign_leaves(sizes, num_shards, centers)
    scattered = assign_leaves(sizes, num_shards)
    for owner in (grouped, scattered):
        assert owner.shape == (searcher.num_leaves,) and set(owner) == set(range(num_shards))
        loads = np.bincount(owner, weights=sizes, minlength=num_shards)
        # Each cut misses its target by at most one leaf; a shard sees one cut per halving.
        assert np.abs(loads - sizes.sum() / num_shards).max() <= np.ceil(np.log2(num_shards)) * sizes.max()
    leaves, _ = searcher.choose_leaves(q, 6)
    assert _fan_out(grouped, leaves) < _fan_out(scattered, leaves)
    assert np.array_equal(assign_leaves(sizes, num_shards, centers), grouped)  # deterministic
    # More shards than leaves: one leaf each.
    few = assign_leaves(sizes[:3], 5, centers[:3])
    assert sorted(few) == [0, 1, 2]


def _reference_merge(keys, approx, exact, wanted, k):
    """The merge's rule in plain Python: each key once with its best approx score, the
    `wanted` best of those by approx, their `k` best by exact (ties: smaller key)."""
    best = {}
    for key, a, e in zip(keys, approx, exact):
        if key >= 0 and (key not in best or a > best[key][0]):
            best[key] = (a, e)
    kept = sorted(best, key=lambda key: (-best[key][0], key))[:wanted]
    top = sorted(kept, key=lambda key: (-best[key][1], key))[:k]
    return top + [-1] * (k - len(top)), [best[key][1] for key in top] + [-np.inf] * (k - len(top))


def test_merge_keeps_each_point_once_with_its_best_score():
    rng = np.random.default_rng(12)
    nq, width = 40, 90
    # Many repeats (a point's copies on several shards), keys beyond 32 bits, padding.
    keys = rng.integers(0, 30, (nq, width)).astype(np.int64) * (2**33 + 7)
    keys[rng.random((nq, width)) < 0.1] = -1
    exact_of = {}
    exact = np.empty((nq, width), np.float32)
    for (q, j), key in np.ndenumerate(keys):  # one reordered score per point, as the shards give
        exact[q, j] = exact_of.setdefault(int(key), np.float32(np.round(rng.standard_normal(), 1)))
    approx = np.round(rng.standard_normal((nq, width)), 1).astype(np.float32)
    for wanted, k in ((25, 10), (5, 8), (200, 3)):
        ids, scores = _core.merge_candidates(keys, approx, exact, wanted, k, keys=keys)
        for q in range(nq):
            want_ids, want_scores = _reference_merge(keys[q], approx[q], exact[q], wanted, k)
            np.testing.assert_array_equal(ids[q], want_ids)
            np.testing.assert_array_equal(scores[q], np.asarray(want_scores, np.float32))
