"""Searches running while the index changes under them: updates, rebalance, new default
knobs, saves and introspection from other threads. Every search must succeed with a
consistent answer. These are also the tests the ThreadSanitizer build runs
(`.ci/sanitize thread`), so they are kept small."""
import sys
import threading
import time

import numpy as np
import pytest

import annlib
from conftest import clustered, run_python, run_threads

pytestmark = pytest.mark.concurrency


def test_searches_never_fail_across_rebalance_and_new_defaults(rng, tmp_path):
    """rebalance() swaps config, arrays and scorer, set_default_params() the knobs: a
    search reads them as one snapshot, never the old config with the new scorer (which
    asked for more leaves than the new index had)."""
    x, q = clustered(rng, 3000, 16, nq=32)
    s = annlib.builder(x, 10, "dot_product").tree(40, 30).score_ah(2).reorder(50).build(progress=False)
    counts = {"searches": 0, "changes": 0}

    def changer(stop):
        leaves = 40
        while not stop.is_set():
            leaves = 20 if leaves == 40 else 40
            s.rebalance(num_leaves=leaves)
            s.set_default_params(annlib.SearchParams(leaves_to_search=leaves, pre_reorder_num_neighbors=40,
                                                      final_num_neighbors=10))
            counts["changes"] += 1

    def searcher(stop):
        while not stop.is_set():
            ids, _ = s.search_batched(q)
            one, _ = s.search(q[0])
            assert (ids >= 0).all() and (one >= 0).all()
            assert s.health()["size"] == 3000
            counts["searches"] += 1

    def saver(stop):
        i = 0
        while not stop.is_set():
            s.save(tmp_path / f"copy{i % 2}")
            assert annlib.load(tmp_path / f"copy{i % 2}").size() == 3000
            i += 1

    errors = run_threads([changer, searcher, searcher, saver], 3.0)
    assert not errors, errors[0]
    assert counts["changes"] >= 1 and counts["searches"] >= 5, counts


def test_updates_export_and_introspection_race_free(rng):
    """Upserts (which can make the index spilled), deletes, exports (save's copy of the
    changed arrays) and the read-only properties, all at once."""
    x, q = clustered(rng, 2000, 8, nq=16)
    s = (annlib.builder(x, 5, "squared_l2").tree(20, 5, soar_lambda=1.0).score_ah(2).reorder(20)
         .build(progress=False))
    state = {"next": 2000}

    def writer(stop):
        local = np.random.default_rng(5)
        while not stop.is_set():
            start = state["next"]
            s.upsert(np.arange(start, start + 50), x[local.integers(2000, size=50)] + 0.01)
            s.delete(np.arange(start, start + 25))
            state["next"] = start + 50

    def reader(stop):
        while not stop.is_set():
            ids, dist = s.search_batched(q, num_threads=2)
            assert np.all(dist[:, 1:] >= dist[:, :-1])
            for row in ids:
                real = row[row >= 0]
                assert len(np.unique(real)) == len(real)

    def inspector(stop):
        while not stop.is_set():
            scorer = s._snapshot().index
            assert scorer.spilled in (True, False)
            assert scorer.num_leaves == 20 and scorer.simd_level
            arrays = s._arrays()
            assert "ids" not in arrays or len(arrays["ids"]) == int(arrays["meta"][0])
            s.contains(np.arange(10))

    errors = run_threads([writer, reader, reader, inspector], 3.0)
    assert not errors, errors[0]


def test_many_threads_share_the_pool(rng):
    """Several Python threads each running multi-threaded searches at once on the one
    persistent pool: every result equals the single-threaded answer."""
    x, q = clustered(rng, 4000, 24, nq=64)
    quantized = annlib.builder(x, 10, "cosine").tree(30, 8).score_ah(2).reorder(40).build(progress=False)
    brute = annlib.builder(x, 10, "squared_l2").score_brute_force(recall_target=0.9).build()
    expected = {id(i): i.search_batched(q, num_threads=1)[0] for i in (quantized, brute)}

    def worker(index):
        def run(stop):
            while not stop.is_set():
                np.testing.assert_array_equal(index.search_batched(q, num_threads=3)[0], expected[id(index)])
        return run

    errors = run_threads([worker(quantized), worker(brute), worker(quantized), worker(brute)], 2.0)
    assert not errors, errors[0]


@pytest.mark.skipif("avx512_bf16" not in annlib.available_simd_levels(), reason="needs AVX-512 BF16")
def test_first_screened_searches_in_many_threads_check_the_screen_once(rng):
    """A binned float32 index decides on first use which screen keeps recall (making its int8
    copy, or each point's bf16 residual): threads arriving together, with batches or single
    queries, all wait for that one check, then all answer as one thread would."""
    x = rng.standard_normal((4000, 24)).astype(np.float32)
    q = rng.standard_normal((40, 24)).astype(np.float32)
    base = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.9).build()
    expected = base.with_simd_level("avx512_bf16", bf16_variant="native").search_batched(q, num_threads=1)
    for _ in range(3):
        fresh = base.with_simd_level("avx512_bf16", bf16_variant="native")
        results, errors = [], []

        def search(one_by_one):
            try:
                if one_by_one:  # single queries take the int8 screen too
                    rows = [fresh.search(v) for v in q]
                    results.append((np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])))
                else:
                    results.append(fresh.search_batched(q, num_threads=1))
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=search, args=(i % 2 == 1,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert fresh.uses_screen()
        for ids, scores in results:
            np.testing.assert_array_equal(ids, expected[0])
            np.testing.assert_array_equal(scores, expected[1])


LOCK_CYCLE_SCRIPT = r"""
import threading, time
import numpy as np
import annlib

rng = np.random.default_rng(0)
x = rng.standard_normal((8000, 16)).astype(np.float32)
s = annlib.builder(x, 10, "dot_product").tree(40, 40).score_ah(2).reorder(100).build(progress=False)
q = rng.standard_normal((100, 16)).astype(np.float32)
start = time.perf_counter()
s.search_batched(q, num_threads=1)
per_query = (time.perf_counter() - start) / len(q)
long_batch = rng.standard_normal((max(2000, int(2.0 / per_query)), 16)).astype(np.float32)

# A (the main thread, whose calls poll for signal handlers): a long search holding the index's
# shared lock, taking the GIL every 50 ms for its poll.
# B: an update, waiting for A; new readers now queue behind it.
# C: a binding that waits for the lock with the GIL in hand (the engine's search checks k
# against the size under the lock before it lets go of the GIL).
# A busy machine may start them out of order: such a try does not count.
for attempt in range(5):
    times = {}

    def update():
        time.sleep(0.3)
        times["b"] = time.perf_counter()
        s.delete(np.array([attempt]))
        times["b done"] = time.perf_counter()

    def engine_search():
        time.sleep(0.6)
        times["c"] = time.perf_counter()
        times["ids"] = s._state.index.search(q[0], 40, 100, 10)[0]

    b, c = threading.Thread(target=update), threading.Thread(target=engine_search)
    b.start(); c.start()
    times["a"] = time.perf_counter()
    s.search_batched(long_batch, num_threads=1)
    times["a done"] = time.perf_counter()
    b.join(); c.join()
    set_up = times["a"] < times["b"] < times["c"] < times["a done"] <= times["b done"]
    if set_up:
        break
print("set up", set_up, "ids", int((times["ids"] >= 0).sum()), "deleted", 8000 - s.size() == attempt + 1)
"""


def test_a_lock_wait_never_holds_the_gil_a_locked_search_polls_for():
    """A search on the main thread holding the index lock takes the GIL now and then (its
    Ctrl-C poll); an update waits for it, and a third thread asks for the lock with the GIL
    in hand: that wait must let go of the GIL, or the three hang forever. Run in a child
    process so a hang fails here instead of stopping the test run."""
    done = run_python("-c", LOCK_CYCLE_SCRIPT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["set", "up", "True", "ids", "10", "deleted", "True"], done.stdout


def test_a_search_on_another_thread_never_waits_for_the_gil_mid_call(rng):
    """Only the main thread runs Python's signal handlers, so only its calls poll for them
    (taking the GIL every 50 ms); a call on another thread sees Ctrl-C through the chained
    C handler. Here the main thread keeps the GIL (a busy loop, a long switch interval)
    while a worker's search runs under a time limit a few times its quiet duration: a
    poll waiting for the GIL would hold it up past the limit (TimeoutError)."""
    x, q = clustered(rng, 4000, 32, nq=400)
    s = annlib.builder(x, 10, "dot_product").tree(30, 30).score_ah(2).reorder(200).build(progress=False)
    start = time.perf_counter()
    s.search_batched(q, num_threads=1)
    per_batch = time.perf_counter() - start
    batch = np.tile(q, (max(1, int(0.4 / per_batch)), 1))  # about 0.4 s: several polls' worth
    start = time.perf_counter()
    s.search_batched(batch, num_threads=1)
    limit = max(1.0, 4 * (time.perf_counter() - start))
    entered, outcome = threading.Event(), []

    def worker():
        try:
            with annlib.time_limit(limit):
                entered.set()
                s.search_batched(batch, num_threads=1)
            outcome.append("done")
        except TimeoutError:
            outcome.append("timed out")

    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)  # this thread keeps the GIL until it blocks
    try:
        t = threading.Thread(target=worker)
        t.start()
        entered.wait()
        time.sleep(0.2)  # the worker enters the search and lets go of the GIL
        busy_until = time.perf_counter() + limit + 1.0
        while time.perf_counter() < busy_until:
            pass
        t.join()
    finally:
        sys.setswitchinterval(previous)
    assert outcome == ["done"]
