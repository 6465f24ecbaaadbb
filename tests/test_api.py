"""The searcher API: shapes, dtypes, score conventions, threads, GIL release."""
import os
import subprocess
import sys
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


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux feature")
def test_all_cores_means_the_cores_the_process_may_run_on(tmp_path):
    # taskset, cgroup cpusets and pinned containers give a process fewer CPUs than the machine
    # has; num_threads=0 must not start a thread per hardware thread there.
    assert annlib.available_cores() == len(os.sched_getaffinity(0))
    one_cpu = min(os.sched_getaffinity(0))
    script = f"""
import os, numpy as np, annlib
os.sched_setaffinity(0, {{{one_cpu}}})
x = np.random.default_rng(0).standard_normal((20000, 32)).astype(np.float32)
s = annlib.builder(x, 10, "squared_l2").score_brute_force().build(num_threads=1)
threads = len(os.listdir("/proc/self/task"))
ids = s.search_batched(x[:500], num_threads=0)[0]
print(annlib.available_cores(), len(os.listdir("/proc/self/task")) - threads, int(ids[:, 0].sum()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.split()  # (the installed annlib, not the source tree's)
    # One core: no pool worker started, and every query still answered (each finds itself).
    assert out == ["1", "0", str(sum(range(500)))]


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


# ---- what users expect of every index: repr, len, `in`, metric aliases, pickling ----------

def _indexes(rng):
    x = rng.standard_normal((400, 16)).astype(np.float32)
    brute = annlib.builder(x, 5, "dot_product").score_brute_force(dtype="int8").build()
    quantized = (annlib.builder(x, 5, "squared_l2", ids=np.arange(400) * 3).tree(8, 3, soar_lambda=1.0)
                 .score_ah(2).reorder(40).build())
    return x, brute, quantized


def test_repr_names_kind_metric_size_dimension_and_simd_level(rng):
    _, brute, quantized = _indexes(rng)
    assert repr(brute) == (f"BruteForceSearcher(brute force int8 exact, dot_product, 400 points, dim 16, "
                           f"simd {annlib.simd_level()})")
    text = repr(quantized)
    for part in ("QuantizedSearcher(", "quantized 8 leaves (search 3)", "SOAR lambda 1", "AH 2 dims/block",
                 "reorder float32 top 40", "squared_l2", "400 points", "dim 16", "k 5", annlib.simd_level()):
        assert part in text, (part, text)


def test_len_and_membership_take_scalar_ids(rng):
    _, brute, quantized = _indexes(rng)
    assert len(brute) == len(quantized) == 400
    assert 399 in brute and 400 not in brute and 3 in quantized and 4 not in quantized
    assert brute.contains(np.int64(7)) is True and quantized.contains(5) is False
    np.testing.assert_array_equal(quantized.contains([0, 1, 3]), [True, False, True])
    with pytest.raises(ValueError):
        brute.contains(-1)
    with pytest.raises(TypeError, match="contains"):
        [1, 2] in brute


@pytest.mark.parametrize("alias,measure", [("euclidean", "squared_l2"), ("l2", "squared_l2"), ("angular", "cosine"),
                                           ("ip", "dot_product"), ("inner_product", "dot_product"),
                                           ("dot", "dot_product")])
def test_metric_aliases_mean_the_same_everywhere(rng, alias, measure):
    from annlib.datasets import ground_truth
    from annlib.datasets.hdf5 import Dataset

    x = rng.standard_normal((200, 8)).astype(np.float32)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    aliased = annlib.builder(x, 5, alias).score_brute_force().build()
    assert aliased.distance_measure == measure and aliased.config.distance_measure == measure
    canonical = annlib.builder(x, 5, measure).score_brute_force().build()
    np.testing.assert_array_equal(aliased.search_batched(q)[0], canonical.search_batched(q)[0])
    np.testing.assert_array_equal(ground_truth(x, q, 5, alias)[0], canonical.search_batched(q)[0])
    assert Dataset(x, q, None, None, alias).distance_measure == measure
    with pytest.raises(ValueError, match="angular"):
        annlib.builder(x, 5, "manhattan")


def test_searchers_pickle_through_the_saved_format(rng):
    import pickle

    x, brute, quantized = _indexes(rng)
    for index in (brute, quantized):
        copy = pickle.loads(pickle.dumps(index))
        assert type(copy) is type(index) and repr(copy) == repr(index)
        np.testing.assert_array_equal(copy.search_batched(x[:10])[0], index.search_batched(x[:10])[0])
    payload = pickle.dumps(brute)
    damaged = payload.replace(b"dot_product", b"dot_producX", 1)  # config.json no longer matches its sha256
    with pytest.raises(ValueError, match="checksum"):
        pickle.loads(damaged)


def _search_in_worker(index, queries):
    return index.search_batched(queries, num_threads=1)[0]


def test_searchers_move_into_worker_processes(rng):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    x, _, quantized = _indexes(rng)
    # fork: a spawned worker would import annlib from the current directory, which in a
    # test run from the repository is the source tree.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_search_in_worker, [quantized, quantized], [x[:5], x[5:10]]))
    np.testing.assert_array_equal(np.concatenate(results), quantized.search_batched(x[:10])[0])


@pytest.mark.parametrize("measure,metric", [("squared_l2", "euclidean"), ("cosine", "cosine")])
def test_exact_search_agrees_with_scikit_learn(rng, measure, metric):
    # An independent exact reference: scikit-learn's brute-force NearestNeighbors.
    from sklearn.neighbors import NearestNeighbors

    x = rng.standard_normal((2000, 32)).astype(np.float32)
    q = rng.standard_normal((50, 32)).astype(np.float32)
    ids, scores = annlib.builder(x, 10, measure).score_brute_force().build().search_batched(q)
    distances, expected = NearestNeighbors(n_neighbors=10, algorithm="brute", metric=metric).fit(x).kneighbors(q)
    np.testing.assert_array_equal(ids, expected)
    reference = distances**2 if measure == "squared_l2" else 1.0 - distances
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-4)


def test_core_stub_matches_the_built_module():
    # annlib/_core.pyi is what type checkers see of the extension: same names, same methods.
    import ast
    import inspect
    from pathlib import Path

    from annlib import _core

    stub = ast.parse((Path(annlib.__file__).parent / "_core.pyi").read_text())

    def names(body):
        found = {}
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[node.name] = names(node.body)
            elif isinstance(node, ast.FunctionDef):
                found[node.name] = None
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id != "__all__":
                found[node.target.id] = None
        return found

    def public(obj):  # (pybind11 gives every class an __init__, constructible or not)
        return {n for n in dir(obj) if not n.startswith("_")}

    stubbed = names(stub.body)
    assert set(stubbed) == {n for n in public(_core) if not n.startswith("__")}
    for name, members in stubbed.items():
        obj = getattr(_core, name)
        if inspect.isclass(obj) and members is not None and not issubclass(obj, Exception):
            own = {n for n in public(obj) if n in vars(obj)}
            assert set(members) - {"__init__"} == own, name
    assert set(stubbed["testing"]["Lut16Codes"]) - {"__init__"} == {n for n in public(_core.testing.Lut16Codes)
                                                     if n in vars(_core.testing.Lut16Codes)}
    assert (Path(annlib.__file__).parent / "py.typed").is_file()
