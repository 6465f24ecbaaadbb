"""Live updates of the quantized index: ids, upsert, delete, compact, health,
rebalance, save/load after updates, and searches racing updates."""
import threading

import numpy as np
import pytest

import annlib
from annlib.recall_math import id_recall
from conftest import clustered, exact_among, exact_topk, run_threads


def _data(rng, n, d, nq=0):
    """Clustered points (and queries around the same centers)."""
    return clustered(rng, n, d, clusters=40, spread=0.35, nq=nq)


def _build(x, measure, ids=None, soar=1.5, leaves=40, search=8, reorder=60):
    return (annlib.builder(x, 10, measure, ids=ids).tree(leaves, search, soar_lambda=soar)
            .score_ah(2, anisotropic_quantization_threshold=None if measure == "squared_l2" else 0.2)
            .reorder(reorder).build(progress=False))


MEASURES = ["dot_product", "squared_l2", "cosine"]


@pytest.mark.parametrize("measure", MEASURES)
def test_ids_given_at_build_are_what_results_speak(rng, measure):
    x, q = _data(rng, 2000, 16, 50)
    ids = np.arange(2000, dtype=np.int64) * 7919 + 10**11  # far beyond n: the id map hashes them
    s = _build(x, measure, ids=ids)
    got = s.search_batched(q)[0]
    assert np.isin(got, ids).all()
    assert id_recall(got, ids[exact_topk(x, q, 10, measure)[0]], 10) >= 0.9
    brute = annlib.builder(x, 10, measure, ids=ids).score_brute_force().build()
    np.testing.assert_array_equal(brute.search_batched(q)[0], ids[exact_topk(x, q, 10, measure)[0]])


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("soar", [None, 1.5])
def test_recall_after_growing_by_half_is_close_to_a_fresh_build(rng, measure, soar):
    n = 20000
    x, q = _data(rng, n, 24, 300)
    truth = exact_topk(x, q, 10, measure)[0]

    def build(data, seed=0):
        return (annlib.builder(data, 10, measure).tree(80, 10, soar_lambda=soar, seed=seed)
                .score_ah(2, anisotropic_quantization_threshold=None if measure == "squared_l2" else 0.2)
                .reorder(150).build(progress=False))

    grown = build(x[:2 * n // 3])
    grown.upsert(np.arange(2 * n // 3, 2 * n // 3 + 5000), x[2 * n // 3:2 * n // 3 + 5000])
    for lo in range(2 * n // 3 + 5000, n, 200):  # many small calls too
        grown.upsert(np.arange(lo, min(lo + 200, n)), x[lo:lo + 200])
    assert grown.size() == n
    # A fresh build's recall varies with its k-means seed by a few points at this size: compare
    # with the mean of three.
    fresh_recall = np.mean([id_recall(build(x, seed).search_batched(q)[0], truth, 10) for seed in range(3)])
    grown_recall = id_recall(grown.search_batched(q)[0], truth, 10)
    assert fresh_recall >= 0.8
    assert grown_recall >= fresh_recall - 0.02, (grown_recall, fresh_recall)
    # The single-query path agrees with the batched one on the grown index.
    single = np.stack([grown.search(v)[0] for v in q[:20]])
    np.testing.assert_array_equal(single, grown.search_batched(q[:20], num_threads=1)[0])


def test_upserted_points_are_encoded_as_a_build_encodes_them(rng):
    x, q = _data(rng, 3000, 16, 100)
    for measure in MEASURES:
        built = _build(x, measure)
        rebuilt = _build(x, measure)
        rebuilt.delete(np.arange(2000, 3000))
        rebuilt.upsert(np.arange(2000, 3000), x[2000:])
        np.testing.assert_array_equal(built.search_batched(q)[0], rebuilt.search_batched(q)[0])


def test_upsert_replaces_an_existing_id(rng):
    x = _data(rng, 2000, 16)
    s = _build(x, "squared_l2")
    moved = x[1234:1235] + 0.01
    s.upsert([5], moved)
    assert s.size() == 2000
    ids, dist = s.search(moved[0], final_num_neighbors=3)
    assert 5 in ids and dist[list(ids).index(5)] == pytest.approx(3 * 0.0, abs=2e-3)
    ids, _ = s.search(x[5])
    assert 5 not in ids  # the old vector is gone


def test_results_speak_ids_while_rows_stop_and_start_matching_them(rng):
    # A build without ids= holds id r in row r, and the engine then skips mapping rows to
    # ids; appends in order keep that, a replacement or a delete ends it, a compaction
    # that leaves rows 0..n-1 holding ids 0..n-1 brings it back. Every search is exact
    # here (every leaf, every candidate re-ranked), so ids and scores are compared.
    x, q = _data(rng, 1500, 16, 40)
    s = _build(x, "squared_l2", leaves=10, search=10, reorder=2000)
    held = {i: x[i] for i in range(len(x))}

    def check():
        ids = np.array(sorted(held))
        vectors = np.array([held[i] for i in ids])
        got, scores = s.search_batched(q, final_num_neighbors=20)
        want, want_scores = exact_topk(vectors, q, 20, "squared_l2")
        np.testing.assert_array_equal(got, ids[want])
        np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-3)
        one, _ = s.search(q[0], final_num_neighbors=20)
        np.testing.assert_array_equal(one, ids[want[0]])

    check()
    extra = _data(rng, 30, 16)
    s.upsert(np.arange(1500, 1530), extra)  # appended in order: still row r = id r
    held.update({1500 + i: extra[i] for i in range(30)})
    check()
    s.upsert([7], q[:1] + 0.01)  # id 7 moves to a new row
    held[7] = (q[0] + 0.01).astype(np.float32)
    check()
    s.delete([3, 1529])
    del held[3], held[1529]
    check()
    s.compact()  # rows renumbered: id 7 sits in the last row, ids after 3 one row down
    check()

    s = _build(x, "squared_l2", leaves=10, search=10, reorder=2000)
    held = {i: x[i] for i in range(len(x))}
    s.delete(np.arange(1200, 1500))  # the last rows: tombstones until compacted
    for i in range(1200, 1500):
        del held[i]
    check()
    s.compact()  # rows 0..1199 hold ids 0..1199 again
    check()
    s.upsert([1200], x[1200:1201])
    held[1200] = x[1200]
    check()


@pytest.mark.parametrize("measure", MEASURES)
def test_deleted_ids_never_come_back(rng, measure):
    x = _data(rng, 3000, 16)
    q = x[:300] + 0.01  # queries whose nearest points are being deleted
    s = _build(x, measure)
    victims = np.arange(0, 300, 2)
    s.delete(victims)
    assert s.size() == 3000 - len(victims)
    assert not s.contains(victims).any() and s.contains([1, 3]).all()
    got = s.search_batched(q, final_num_neighbors=50)[0]
    assert not np.isin(got, victims).any()
    assert (got >= 0).all()
    single = s.search(q[0], final_num_neighbors=50)[0]
    assert not np.isin(single, victims).any()
    keep = np.setdiff1d(np.arange(3000), victims)
    assert id_recall(s.search_batched(q[1::2])[0], exact_among(x, q[1::2], 10, measure, keep), 10) >= 0.9


def test_compaction_keeps_results_and_reclaims_space(rng):
    x, q = _data(rng, 4000, 16, 100)
    s = _build(x, "dot_product")
    s.delete(np.arange(0, 500))  # under a quarter: stays as tombstones
    assert s.health()["deleted_pending_compaction"] == 500
    before = s.search_batched(q)
    s.compact()
    assert s.health()["deleted_pending_compaction"] == 0
    after = s.search_batched(q)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)
    s.delete(np.arange(500, 1600))  # past a quarter: compacted by the call itself
    assert s.health()["deleted_pending_compaction"] == 0
    assert s.size() == 2400


@pytest.mark.parametrize("measure", MEASURES)
def test_save_after_updates_then_load_gives_the_same_results(rng, tmp_path, measure):
    x, q = _data(rng, 3000, 16, 100)
    s = _build(x[:2000], measure, ids=np.arange(2000) + 10**6)
    s.upsert(np.arange(2000, 3000), x[2000:])
    s.delete(np.arange(10**6, 10**6 + 200))
    s.upsert([10**6 + 500], x[:1])  # replace
    want = s.search_batched(q, final_num_neighbors=20)
    s.save(tmp_path / "idx")
    loaded = annlib.load(tmp_path / "idx")
    got = loaded.search_batched(q, final_num_neighbors=20)
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_allclose(want[1], got[1], rtol=1e-6)
    assert loaded.size() == s.size() == 2800
    assert loaded.health()["added_since_training"] == s.health()["added_since_training"] == 1001
    # A loaded (memory-mapped, read-only) index takes updates too: leaves are copied on write.
    loaded.upsert([7], x[2999:])
    assert loaded.contains([7]).all() and loaded.size() == 2801
    if measure != "dot_product":  # x[2999] is its own nearest neighbour (twice now)
        assert 7 in loaded.search(x[2999], final_num_neighbors=2)[0]


def test_health_reports_drift_and_rebalance_retrains(rng):
    x = _data(rng, 6000, 16)
    s = _build(x[:3000], "squared_l2")
    h = s.health()
    assert h["added_fraction"] == 0 and not h["rebalance_recommended"]
    assert h["num_leaves"] == 40 and h["leaf_size_max_over_mean"] >= 1.0
    # Drift: the new points lie away from everything the centers and codebooks were trained
    # on, so their residuals are poorly coded and they crowd a few leaves.
    drifted = (x[3000:] + 3.0).astype(np.float32)
    s.upsert(np.arange(3000, 6000), drifted)
    h = s.health()
    assert h["added_since_training"] == 3000 and h["added_fraction"] == pytest.approx(0.5)
    assert h["leaf_size_cv"] > 1.5 * h["leaf_size_cv_at_training"] and h["rebalance_recommended"]
    data = np.concatenate([x[:3000], drifted])
    queries = drifted[:100] + 0.05
    truth = exact_topk(data, queries, 10, "squared_l2")[0]
    before = id_recall(s.search_batched(queries)[0], truth, 10)
    s.rebalance()
    h = s.health()
    assert h["added_fraction"] == 0 and s.size() == 6000 and not h["rebalance_recommended"]
    after = id_recall(s.search_batched(queries)[0], truth, 10)
    fresh = id_recall(_build(data, "squared_l2").search_batched(queries)[0], truth, 10)
    assert after >= fresh - 0.02 and after > before + 0.3, (before, after, fresh)


def test_update_errors_are_clear(rng):
    x = _data(rng, 1000, 8)
    s = _build(x, "dot_product", leaves=10, search=3)
    with pytest.raises(ValueError, match="more than once"):
        s.upsert([1, 1], x[:2])
    with pytest.raises(ValueError, match="more than once"):
        s.delete([3, 3])
    # One message whichever index kind (the engine's check, and brute force's in Python).
    missing = r"delete: the index holds no point with id 1000000000 \(1 of the 2 ids are not in the index\); " \
              r"nothing was deleted"
    brute = annlib.builder(x, 10, "dot_product").score_brute_force().build()
    for index in (s, brute):
        with pytest.raises(ValueError, match=missing):
            index.delete([3, 10**9])
        assert index.contains([3]).all()  # all or nothing
    with pytest.raises(ValueError, match=">= 0"):
        s.upsert([-1], x[:1])
    with pytest.raises(ValueError, match="2 entries but vectors has 1"):
        s.upsert([5, 6], x[:1])
    with pytest.raises(ValueError, match="dimension"):
        s.upsert([5], np.ones((1, 9), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        s.upsert([5], np.full((1, 8), np.nan, np.float32))
    with pytest.raises(TypeError, match="integers"):
        s.delete(np.array([1.5]))
    with pytest.raises(ValueError, match="more than once"):
        annlib.builder(x, 10, "dot_product", ids=np.zeros(1000, np.int64))
    with pytest.raises(ValueError, match="1000 rows"):
        annlib.builder(x, 10, "dot_product", ids=np.arange(5))
    no_reorder = annlib.builder(x, 10, "dot_product").tree(10, 3).score_ah(2).build(progress=False)
    with pytest.raises(ValueError, match="reorder"):
        no_reorder.rebalance()
    assert s.size() == 1000


@pytest.mark.concurrency
def test_searches_racing_upserts_and_deletes_never_see_deleted_ids(rng):
    d = 16
    x = _data(rng, 4000, d)
    s = _build(x, "squared_l2", leaves=30, search=6)
    deleted: set = set()
    deleted_lock = threading.Lock()
    counts = {"searches": 0, "updates": 0}

    def writer(stop):
        local = np.random.default_rng(1)
        next_id, live = 4000, list(range(4000))
        while not stop.is_set():
            new = x[local.integers(len(x), size=200)] + 0.1 * local.standard_normal((200, d), np.float32)
            s.upsert(np.arange(next_id, next_id + 200), new)
            live.extend(range(next_id, next_id + 200))
            next_id += 200
            picks = local.choice(len(live), 150, replace=False)
            victims = np.array([live[i] for i in picks])
            for i in sorted(picks, reverse=True):
                live.pop(i)
            s.delete(victims)
            with deleted_lock:  # recorded only once delete() has returned
                deleted.update(victims.tolist())
            counts["updates"] += 1

    def reader(seed):
        def run(stop):
            local = np.random.default_rng(seed)
            while not stop.is_set():
                with deleted_lock:
                    gone = np.array(sorted(deleted), dtype=np.int64)
                q = x[local.integers(len(x), size=64)] + 0.1 * local.standard_normal((64, d), np.float32)
                allow = local.choice(20000, 5000, replace=False) if local.random() < 0.3 else None
                ids, dist = s.search_batched(q, final_num_neighbors=20, num_threads=1, allowlist=allow)
                one, _ = s.search(q[0], final_num_neighbors=20)
                for row in (*ids, one):
                    assert not np.isin(row, gone).any(), "a deleted id came back"
                    real = row[row >= 0]
                    assert len(np.unique(real)) == len(real), "an id came back twice"
                if allow is not None:
                    assert np.isin(ids[ids >= 0], allow).all()
                assert np.all(dist[:, 1:] >= dist[:, :-1]), dist[np.any(dist[:, 1:] < dist[:, :-1], axis=1)][:2]
                counts["searches"] += 1
        return run

    errors = run_threads([writer, reader(2), reader(3)], 4.0)
    assert not errors, errors[0]
    assert counts["updates"] >= 3 and counts["searches"] >= 10, counts
    assert s.size() == 4000 + 50 * counts["updates"]


def test_an_index_emptied_by_deletes_saves_loads_and_refills(rng, tmp_path):
    x = _data(rng, 500, 8)
    s = _build(x, "cosine", leaves=10, search=3)
    s.delete(np.arange(500))
    assert s.size() == 0
    with pytest.raises(ValueError, match="exceeds the number of indexed points"):
        s.search_batched(x[:2])
    with pytest.raises(ValueError, match="exceeds the number of indexed points"):
        s.search(x[0])  # the all-C++ path checks it too
    s.save(tmp_path / "empty")
    loaded = annlib.load(tmp_path / "empty")
    assert loaded.size() == 0
    loaded.upsert(np.arange(100, 150), x[:50])
    got = loaded.search_batched(x[:5], final_num_neighbors=3)[0]
    assert got[:, 0].tolist() == [100, 101, 102, 103, 104]


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_updates_with_compressed_reorder_rows(rng, tmp_path, dtype):
    x, q = _data(rng, 3000, 16, 100)
    s = (annlib.builder(x[:2000], 10, "squared_l2").tree(30, 6).score_ah(2).reorder(80, dtype=dtype)
         .build(progress=False))
    s.upsert(np.arange(2000, 3000), x[2000:])
    s.delete(np.arange(0, 2000, 5))
    keep = np.setdiff1d(np.arange(3000), np.arange(0, 2000, 5))
    truth = exact_among(x, q, 10, "squared_l2", keep)
    got = s.search_batched(q)
    assert not np.isin(got[0], np.arange(0, 2000, 5)).any()
    assert id_recall(got[0], truth, 10) >= 0.85
    s.save(tmp_path / "idx")
    np.testing.assert_array_equal(annlib.load(tmp_path / "idx").search_batched(q)[0], got[0])
    s.rebalance()  # vectors read back from the rounded rows
    assert s.size() == len(keep) and id_recall(s.search_batched(q)[0], truth, 10) >= 0.85




@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-6), ("bfloat16", 2e-2), ("int8", 2e-2)])
@pytest.mark.parametrize("measure", ["dot_product", "squared_l2", "cosine"])
def test_brute_force_vectors_read_back_after_updates(dtype, tolerance, measure):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((70, 9)).astype(np.float32)
    ids = np.arange(70) * 5 + 3
    s = annlib.builder(x, 3, measure, ids=ids).score_brute_force(dtype=dtype).build()
    s.delete(ids[10:20])
    new = rng.standard_normal((4, 9)).astype(np.float32)
    s.upsert([1, 8, 1000, 4], new)  # 8 replaces a point; the rest are new
    want = {int(i): v for i, v in zip(ids, x)}
    want.update({i: v for i, v in zip([1, 8, 1000, 4], new)})
    for i in ids[10:20]:
        want.pop(int(i))
    asked = np.array(sorted(want))[::-1]
    expected = np.stack([want[int(i)] for i in asked])
    if measure == "cosine":
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    got = s.vectors(asked)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=tolerance * np.abs(expected).max(), rtol=0)
    with pytest.raises(ValueError, match="no point with id 53"):  # deleted above
        s.vectors([3, 53])
