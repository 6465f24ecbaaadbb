"""The searcher API: shapes, dtypes, score conventions, threads, GIL release."""
import threading
import time

import numpy as np
import pytest

import annlib
from conftest import exact_topk


def test_search_and_search_batched_shapes(rng):
    x = rng.standard_normal((500, 24)).astype(np.float32)
    s = annlib.builder(x, 7, "dot_product").score_brute_force().build()
    ids, scores = s.search(x[0])
    assert ids.shape == (7,) and scores.shape == (7,) and ids.dtype == np.int64 and scores.dtype == np.float32
    ids, scores = s.search(x[:1], final_num_neighbors=3)
    assert ids.shape == (3,)
    ids, scores = s.search_batched(x[:20], final_num_neighbors=500)
    assert ids.shape == (20, 500) and sorted(ids[0].tolist()) == list(range(500))
    assert len(s) == s.size() == 500 and s.dim == 24


@pytest.mark.parametrize("measure", ["dot_product", "squared_l2", "cosine"])
def test_scores_in_natural_sense(rng, measure):
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((5, 16)).astype(np.float32)
    s = annlib.builder(x, 5, measure).score_brute_force().build()
    ids, scores = s.search_batched(q)
    _, ref = exact_topk(x, q, 5, measure)
    assert np.allclose(scores, ref, rtol=1e-4, atol=1e-4)
    if measure == "squared_l2":
        assert (np.diff(scores, axis=1) >= 0).all() and (scores >= 0).all()
    else:
        assert (np.diff(scores, axis=1) <= 0).all()
    if measure == "cosine":
        assert (scores <= 1.0 + 1e-5).all()


def test_self_query_squared_l2_is_zero(rng):
    x = rng.standard_normal((100, 8)).astype(np.float32) * 100
    s = annlib.builder(x, 1, "squared_l2").score_brute_force().build()
    ids, scores = s.search_batched(x)
    assert (ids[:, 0] == np.arange(100)).all()
    assert (scores[:, 0] >= 0).all() and (scores[:, 0] < 1e-1).all()


def test_ties_break_by_smaller_id():
    x = np.ones((100, 4), dtype=np.float32)
    s = annlib.builder(x, 5, "dot_product").score_brute_force().build()
    ids, _ = s.search_batched(np.ones((3, 4), dtype=np.float32), num_threads=2)
    assert (ids == np.arange(5)).all()


def test_thread_counts_give_same_results(rng):
    x = rng.standard_normal((20000, 32)).astype(np.float32)
    q = rng.standard_normal((300, 32)).astype(np.float32)
    s = annlib.builder(x, 10, "squared_l2").score_brute_force().build()
    a = s.search_batched(q, num_threads=1)
    b = s.search_batched(q, num_threads=0)
    c = s.search_batched(q[:3], num_threads=2)  # few queries: the database is split
    assert (a[0] == b[0]).all() and np.array_equal(a[1], b[1])
    assert (c[0] == a[0][:3]).all()


def test_gil_is_released_during_search(rng):
    x = rng.standard_normal((100000, 128)).astype(np.float32)
    q = rng.standard_normal((400, 128)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force().build()
    done = threading.Event()
    result = {}

    def work():
        result["out"] = s.search_batched(q, num_threads=1)
        done.set()

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    ticks = 0
    while not done.is_set():  # runs only if the search does not hold the GIL
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.05, "search too fast to observe; enlarge the problem"
    assert ticks >= 0.3 * elapsed / 0.0011, (ticks, elapsed)


def test_config_round_trips_through_json(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    b = annlib.builder(x, 3, "cosine").score_brute_force(recall_target=0.9, dtype="int8")
    cfg = b.config()
    assert annlib.IndexConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(Exception):
        cfg.num_neighbors = 4  # frozen
    with pytest.raises(ValueError, match="already called"):
        b.score_brute_force()


def test_simd_level_reporting():
    levels = annlib.available_simd_levels()
    assert levels[0] == "scalar"
    assert annlib.simd_level() in levels


def test_large_batches_are_chunked_with_identical_results(rng):
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    q = rng.standard_normal((100_000, 8)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.95).build()
    # The engine searches a batch in chunks that keep the selection state within 256 MB:
    # 80,659 queries here (176 bins + 32 slots of 8 bytes, doubled). Searched whole, the
    # batch is split there; searched in two calls, it is not.
    chunked = s.search_batched(q)
    whole = [s.search_batched(part) for part in (q[:50_000], q[50_000:])]
    assert np.array_equal(np.concatenate([w[0] for w in whole]), chunked[0])
    assert np.array_equal(np.concatenate([w[1] for w in whole]), chunked[1])
