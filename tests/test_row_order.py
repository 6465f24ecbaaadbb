"""A batch whose candidates cover enough of the reorder copy is reordered in row order
(csrc/search/row_order.h): every (query, row) product in one sweep over the rows instead of
query by query. The products are the same, so the answers must be bit-identical to one query
at a time (which always reorders query by query)."""
import numpy as np
import pytest

import annlib
from annlib import _core

from conftest import clustered

pays = _core.testing.row_order_pays


def assert_batched_equals_single(index, queries, rows=None, threads=(1, 2), **knobs):
    for num_threads in threads:
        ids, scores = index.search_batched(queries, num_threads=num_threads, **knobs)
        for i in (range(len(queries)) if rows is None else rows):
            one_ids, one_scores = index.search(queries[i], **knobs)
            np.testing.assert_array_equal(one_ids, ids[i])
            np.testing.assert_array_equal(one_scores, scores[i])
    return ids, scores


def test_the_threshold():
    assert pays(500, 1000) and pays(4000, 1000) and not pays(499, 1000)


@pytest.mark.parametrize("measure", ["squared_l2", "dot_product", "cosine"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_row_order_answers_equal_one_query_at_a_time(rng, measure, dtype, simd_level):
    x, q = clustered(rng, 1500, 24, nq=48)
    index = (annlib.builder(x, 10, measure).tree(30, 6, soar_lambda=1.5).score_ah(2).reorder(40, dtype=dtype)
             .build(progress=False).with_simd_level(simd_level))
    assert pays(48 * 40, 1500)  # rows are points (a SOAR copy scores its point's row)
    assert_batched_equals_single(index, q)


def test_ties_and_duplicates(rng):
    # Every point three times: exact scores tie in threes, and which copy wins is by id.
    base = clustered(rng, 300, 8)
    x = np.concatenate([base, base, base])
    q = np.concatenate([base[:20], clustered(rng, 20, 8)])
    for measure in ("squared_l2", "dot_product"):
        index = annlib.builder(x, 12, measure).tree(12, 4, soar_lambda=1.0).score_ah(2).reorder(60).build(progress=False)
        assert pays(len(q) * 60, len(x))
        ids, _ = assert_batched_equals_single(index, q)
        assert all(len(set(row)) == len(row) for row in ids.tolist())


def test_many_chunks_and_a_short_last_one(rng):
    # 2,100 queries of 1,000 candidates: the batch is reordered in chunks of about
    # 2**21 / 1000 = 2,097 queries, the last one 3 queries long (searched query by query).
    x, q = clustered(rng, 3000, 8, nq=2100)
    index = annlib.builder(x, 5, "squared_l2").tree(10, 3).score_ah(2).reorder(1000).build(progress=False)
    assert_batched_equals_single(index, q, rows=list(range(0, 2100, 97)) + [2096, 2097, 2098, 2099], threads=(0,))


def test_filters_updates_and_ids(rng):
    x, q = clustered(rng, 1200, 16, nq=40)
    ids = rng.permutation(10**6)[:1200].astype(np.int64)
    index = (annlib.builder(x, 10, "dot_product", ids=ids).tree(20, 5, soar_lambda=1.5).score_ah(2).reorder(50)
             .build(progress=False))
    allow = ids[::3]
    assert_batched_equals_single(index, q, allowlist=allow)
    index.upsert(ids[:100], x[:100][::-1].copy())  # moved points: new rows, old ones deleted
    index.delete(ids[100:200])
    index.upsert(np.arange(2 * 10**6, 2 * 10**6 + 50), clustered(rng, 50, 16))
    got, _ = assert_batched_equals_single(index, q)
    assert not np.isin(got, ids[100:200]).any()
    assert_batched_equals_single(index, q, denylist=ids[200:400], leaves_to_search=20, pre_reorder_num_neighbors=120)


def test_a_batch_below_the_threshold_answers_the_same(rng):
    # Not reordered in row order: the same answers all the same (the other path).
    x, q = clustered(rng, 5000, 16, nq=20)
    index = annlib.builder(x, 10, "squared_l2").tree(50, 5).score_ah(2).reorder(30).build(progress=False)
    assert not pays(20 * 30, 5000)
    assert_batched_equals_single(index, q)


@pytest.mark.parametrize("soar", [None, 1.5])
def test_a_shards_candidates_equal_one_query_at_a_time(rng, soar):
    # Candidates mode (a shard's answer to a sharded search): each query's `wanted` best
    # candidates with their approximate and reordered scores (unordered: a batch scans
    # leaves in another order than one query, so they are compared sorted by id).
    x, q = clustered(rng, 1500, 16, nq=64)
    index = (annlib.builder(x, 10, "dot_product").tree(30, 6, soar_lambda=soar).score_ah(2).reorder(40)
             .build(progress=False))
    leaves, scores = index.choose_leaves(q, 6)
    assert pays(64 * 30, 1500)
    for num_threads in (1, 2):
        batch = index.shard_candidates(q, leaves, scores, 30, num_threads=num_threads)
        for i in range(len(q)):
            one = index.shard_candidates(q[i:i + 1], leaves[i:i + 1], scores[i:i + 1], 30)
            got_order, want_order = np.argsort(batch[0][i]), np.argsort(one[0][0])
            for got, want in zip(batch[:3], one[:3]):
                np.testing.assert_array_equal(got[i][got_order], want[0][want_order])
