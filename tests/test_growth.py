"""Indexes that start empty and grow: brute force from zero rows or an upsert() stream,
brute-force upsert()/delete(), a quantized index trained on a sample then filled by
upsert() in chunks from a memory-mapped file."""
import threading

import numpy as np
import pytest
from conftest import clustered, exact_among, exact_topk, recall

import annlib
from annlib import _core
from annlib.datasets import read_fvecs, write_fvecs

DTYPES = ["float32", "bfloat16", "int8"]
MEASURES = ["dot_product", "squared_l2", "cosine"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_brute_force_upsert_stream_equals_one_shot_build(rng, dtype, measure):
    # Gathering packed bytes re-quantizes nothing: the grown index is the built one.
    x = rng.standard_normal((333, 24)).astype(np.float32)
    q = rng.standard_normal((17, 24)).astype(np.float32)
    built = annlib.builder(x, 10, measure).score_brute_force(dtype=dtype).build()
    grown = annlib.builder(x[:0], 10, measure).score_brute_force(dtype=dtype).build()
    assert len(grown) == 0
    for start in range(0, len(x), 41):  # odd chunk sizes: panels fill across calls
        grown.upsert(np.arange(start, min(start + 41, len(x))), x[start:start + 41])
    a, b = built.search_batched(q), grown.search_batched(q)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for i in range(3):  # the single-query path agrees too
        np.testing.assert_array_equal(grown.search(q[i])[0], a[0][i])


@pytest.mark.parametrize("dtype", DTYPES)
def test_brute_force_delete_and_replace_match_exact_search(rng, dtype):
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((12, 16)).astype(np.float32)
    index = annlib.builder(x, 5, "squared_l2").score_brute_force(dtype=dtype).build()
    index.delete(np.arange(0, 300, 3))
    replaced = rng.standard_normal((10, 16)).astype(np.float32)
    index.upsert(np.arange(1, 300, 30), replaced)  # 10 held ids get new vectors
    live = np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    vectors = x.copy()
    vectors[np.arange(1, 300, 30)] = replaced
    assert len(index) == len(live)
    ids, _ = index.search_batched(q)
    truth = exact_among(vectors, q, 5, "squared_l2", live)
    if dtype == "float32":
        np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(truth, axis=1))
    else:
        assert recall(ids, truth) >= 0.9
    assert not np.isin(ids, np.arange(0, 300, 3)).any()


def test_brute_force_delete_is_all_or_none(rng):
    x = rng.standard_normal((50, 8)).astype(np.float32)
    index = annlib.builder(x, 5, "dot_product").score_brute_force().build()
    with pytest.raises(ValueError, match="no point with id 77"):
        index.delete([3, 77])
    assert len(index) == 50 and 3 in index


def test_empty_brute_force_index_refuses_searches_until_filled(rng, tmp_path):
    index = annlib.builder(np.zeros((0, 8), np.float32), 3, "cosine").score_brute_force().build()
    assert len(index) == 0 and 0 not in index
    with pytest.raises(ValueError, match="exceeds the number of indexed points \\(0\\)"):
        index.search(np.ones(8, np.float32))
    index.save(tmp_path / "empty")
    loaded = annlib.load(tmp_path / "empty")
    assert len(loaded) == 0
    x = rng.standard_normal((4, 8)).astype(np.float32)
    loaded.upsert([10, 11, 12, 13], x)
    ids, scores = loaded.search(x[2])
    assert ids[0] == 12 and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_compiled_filter_follows_brute_force_updates(rng):
    x = rng.standard_normal((100, 8)).astype(np.float32)
    index = annlib.builder(x, 5, "dot_product").score_brute_force().build()
    allowed = index.compile_filter(allowlist=np.arange(0, 200, 2))
    index.upsert(np.arange(100, 200), rng.standard_normal((100, 8)).astype(np.float32))
    ids, _ = index.search_batched(x[:8], allowlist=allowed)
    assert (ids % 2 == 0).all() and (ids >= 100).any()


@pytest.mark.concurrency
def test_searches_see_brute_force_updates_whole(rng):
    # Every search runs against the index before or after an upsert: each batch
    # of ids is held by some state, and a 1-id search never fails mid-update.
    x = rng.standard_normal((64, 8)).astype(np.float32)
    index = annlib.builder(x, 1, "dot_product").score_brute_force().build()
    stop, errors = threading.Event(), []

    def search():
        while not stop.is_set():
            try:
                ids, _ = index.search_batched(x[:4])
                assert (ids >= 0).all()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    for step in range(30):
        index.upsert(np.arange(1000 + 8 * step, 1008 + 8 * step), rng.standard_normal((8, 8)).astype(np.float32))
        index.delete(np.arange(1000 + 8 * step, 1004 + 8 * step))
    stop.set()
    for t in threads:
        t.join()
    assert not errors and len(index) == 64 + 30 * 4


def test_quantized_train_then_chunked_upsert_from_memory_mapped_file(rng, tmp_path):
    x, q = clustered(rng, 6000, 32, nq=100)
    path = tmp_path / "base.fvecs"
    write_fvecs(path, x)
    data = read_fvecs(path, mmap=True)
    assert isinstance(data, np.memmap)

    def stages(b):
        return b.tree(num_leaves=40, num_leaves_to_search=8).score_ah(2, 0.2).reorder(200)

    sample = np.sort(rng.choice(len(x), 1500, replace=False))
    index = stages(annlib.builder(data[sample], 10, "dot_product")).train()
    assert len(index) == 0 and index.num_leaves == 40
    for start in range(0, len(data), 1000):
        index.upsert(np.arange(start, min(start + 1000, len(data))), data[start:start + 1000])
    built = stages(annlib.builder(x, 10, "dot_product")).build()
    truth = exact_topk(x, q, 10, "dot_product")[0]
    grown_recall = recall(index.search_batched(q)[0], truth)
    assert len(index) == len(x)
    assert grown_recall >= 0.95
    assert grown_recall >= recall(built.search_batched(q)[0], truth) - 0.02
    assert not index.health()["rebalance_recommended"]  # filled from the sample's distribution


@pytest.mark.parametrize("size", [1, 100, 4095, 64 * 1024 + 3, 4 << 20, (5 << 20) + 7])
def test_updated_leaves_and_rows_live_on_cache_lines_and_big_ones_on_2mb_boundaries(size):
    # What an update gives a leaf's codes and the reorder rows (util/aligned_memory.h): the
    # kernels' 64-byte loads never split a line, and large buffers may get huge pages.
    for line, page in _core.testing.scan_buffer_offsets(size):
        assert line == 0
        if size >= 4 << 20:
            assert page == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("measure", ["squared_l2", "dot_product"])
def test_an_index_filled_by_upserts_answers_as_the_same_index_built_at_once(rng, dtype, measure, simd_level):
    # Same training, same points: the upserted index holds them in its own (updated) storage,
    # the built one in the build's arrays; every search must come out bit for bit the same.
    x, q = clustered(rng, 3000, 24, nq=40)
    stages = (annlib.builder(x, 10, measure).tree(num_leaves=20, num_leaves_to_search=5, soar_lambda=1.0)
              .score_ah(2, 0.2).reorder(60, dtype=dtype))
    built = stages.build(progress=False).with_simd_level(simd_level)
    grown = stages.train(progress=False).with_simd_level(simd_level)  # (a copy of an updated index is compacted)
    for start in range(0, len(x), 700):
        grown.upsert(np.arange(start, min(start + 700, len(x))), x[start:start + 700])
    assert grown.simd_level == built.simd_level == simd_level and len(grown) == len(x)
    for knobs in ({}, {"leaves_to_search": 20, "pre_reorder_num_neighbors": 300, "final_num_neighbors": 50}):
        want_ids, want_scores = built.search_batched(q, **knobs)
        ids, scores = grown.search_batched(q, **knobs)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)
        one_ids, one_scores = grown.search(q[0], **knobs)
        np.testing.assert_array_equal(one_ids, want_ids[0])
        np.testing.assert_array_equal(one_scores, want_scores[0])


def test_quantized_index_needs_data_to_learn_from():
    empty = annlib.builder(np.zeros((0, 8), np.float32), 5, "dot_product").score_ah(2)
    with pytest.raises(ValueError, match="train\\(\\) it on a sample"):
        empty.build()
    with pytest.raises(ValueError, match="no vectors"):
        empty.train()
    sample = np.ones((40, 8), np.float32)
    with pytest.raises(ValueError, match="pass them to upsert"):
        annlib.builder(sample, 5, "dot_product", ids=np.arange(40)).score_ah(2).train()


def test_a_builder_with_rows_still_checks_k(rng):
    with pytest.raises(ValueError, match="exceeds"):
        annlib.builder(rng.standard_normal((5, 4)).astype(np.float32), 6, "dot_product")
