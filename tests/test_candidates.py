"""The scan's candidate buffer (kernels/candidates.h), driven directly: what it keeps
after appends, compactions and the final compaction, against a reference sort.

With `distinct` (SOAR: a point's copies in two leaves), the buffer must keep the best
copy of each id and return the best `keep` distinct ids — the set that keeping the best
2 * keep entries and deduplicating afterwards gives — with its bitmaps zeroed again.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annlib._core import testing


def best(scores, ids, keep, distinct):
    """The reference: (id, score) pairs of the best `keep` entries (higher score, then
    smaller id), after keeping each id's best score when distinct."""
    pairs = list(zip(scores.tolist(), ids.tolist()))
    if distinct:
        top = {}
        for s, i in pairs:
            top[i] = max(top.get(i, s), s)
        pairs = [(s, i) for i, s in top.items()]
    pairs.sort(key=lambda p: (-p[0], p[1]))
    return sorted((i, s) for s, i in pairs[:keep])


def kept(scores, ids, keep, distinct):
    out_ids, out_scores = testing.select_candidates(scores, ids, keep, distinct)
    return sorted(zip(out_ids.tolist(), out_scores.tolist()))


@st.composite
def spilled_entries(draw):
    """Entries as a SOAR scan appends them: every id once or twice, in any order,
    scores from a small set (ties) or continuous."""
    n_ids = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    twice = rng.random(n_ids) < draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    ids = np.concatenate([np.arange(n_ids), np.flatnonzero(twice)]).astype(np.int32)
    ids = ids * draw(st.sampled_from([1, 7, 977]))  # sparse ids: bitmaps wider than the buffer
    rng.shuffle(ids)
    if draw(st.booleans()):
        scores = rng.integers(0, 4, len(ids)).astype(np.float32)
    else:
        scores = rng.standard_normal(len(ids)).astype(np.float32)
    keep = draw(st.integers(1, len(ids) + 3))
    return scores, ids, keep


@settings(max_examples=300, deadline=None)
@given(spilled_entries())
def test_distinct_buffer_keeps_the_best_distinct_ids(case):
    scores, ids, keep = case
    assert kept(scores, ids, keep, True) == best(scores, ids, keep, True)
    # What the buffer keeps without dedup, deduplicated afterwards, from twice the entries:
    # the same ids, each with its best score.
    plain = kept(scores, ids, 2 * keep, False)
    dedup = {}
    for i, s in plain:
        dedup[i] = max(dedup.get(i, s), s)
    reference = sorted(sorted(dedup.items(), key=lambda p: (-p[1], p[0]))[:keep])
    assert kept(scores, ids, keep, True) == reference


@settings(max_examples=100, deadline=None)
@given(spilled_entries())
def test_plain_buffer_keeps_the_best_entries(case):
    scores, ids, keep = case
    assert kept(scores, ids, keep, False) == best(scores, ids, keep, False)


def test_many_compactions_with_late_second_copies():
    # Second copies arrive long after the first (a leaf scanned late), better or worse,
    # across many compactions of a small buffer.
    rng = np.random.default_rng(5)
    n = 20_000
    first = rng.standard_normal(n).astype(np.float32)
    second_ids = rng.permutation(n)
    second = (first[second_ids] + rng.normal(0, 0.5, n)).astype(np.float32)
    scores = np.concatenate([first, second])
    ids = np.concatenate([np.arange(n), second_ids]).astype(np.int32)
    for keep in (1, 10, 100, 1000):
        assert kept(scores, ids, keep, True) == best(scores, ids, keep, True)


def test_bad_arguments():
    s = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="keep"):
        testing.select_candidates(s, np.arange(3, dtype=np.int32), 0, True)
    with pytest.raises(ValueError, match="ids"):
        testing.select_candidates(s, np.array([0, -1, 2], np.int32), 2, True)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_select_best_scores_keeps_the_best(data):
    """The leaf choice over a query's centroid scores (search/topk.cpp SelectBestScores: a
    bound from the lane maxima, then a vector filter) at every SIMD level: exactly the ids of
    the `count` best (higher score, then smaller id), ties, duplicates, -inf and tiny or odd
    sizes included."""
    import annlib

    level = data.draw(st.sampled_from(annlib.available_simd_levels()), label="level")
    n = data.draw(st.sampled_from([1, 2, 15, 16, 17, 31, 33, 100, 2600]) | st.integers(1, 5000), label="n")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    kind = data.draw(st.sampled_from(["normal", "ties", "sorted", "reversed", "with -inf"]), label="kind")
    scores = rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        scores = rng.integers(0, 3, n).astype(np.float32)
    elif kind == "sorted":
        scores.sort()
    elif kind == "reversed":
        scores[::-1].sort()
    elif kind == "with -inf":
        scores[rng.random(n) < 0.5] = -np.inf
    count = data.draw(st.integers(1, n + 2), label="count")
    ids = testing.select_best_scores(scores, count, level)
    expected = sorted(range(n), key=lambda i: (-scores[i], i))[:count]
    assert sorted(ids.tolist()) == sorted(expected)


def test_select_best_scores_at_large_counts():
    """Counts whose lane maxima outnumber the scores keep every score for the final selection."""
    rng = np.random.default_rng(3)
    scores = rng.standard_normal(1000).astype(np.float32)
    for count in (1, 250, 499, 500, 501, 999, 1000):
        ids = testing.select_best_scores(scores, count)
        assert sorted(ids.tolist()) == sorted(np.argsort(-scores, kind="stable")[:count].tolist())
