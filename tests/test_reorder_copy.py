"""A float32 reorder copy of data bfloat16 holds exactly (byte-valued descriptors such as
SIFT) is kept in bfloat16: half the bytes, the same results bit for bit. Compared against
the same index with its copy widened to float32, and against exact search; upserts of
values bfloat16 cannot hold widen the copy first."""
import numpy as np
import pytest

import annlib
from annlib.quantized.reorder_copy import exact_in_bfloat16, widened
from annlib.quantized.searching import QuantizedSearcher
from conftest import exact_topk


def integer_data(rng, n=3000, d=24, high=200):
    return rng.integers(0, high, (n, d)).astype(np.float32)


def build(x, measure="squared_l2", soar=None, dtype=None, leaves=20):
    stages = annlib.builder(x, 10, measure).tree(leaves, 5, soar_lambda=soar).score_ah(2)
    return (stages.reorder(40) if dtype is None else stages.reorder(40, dtype=dtype)).build(progress=False)


def held_in(searcher) -> np.dtype:
    return np.asarray(searcher._state.arrays["rows"]).dtype


def as_float32_copy(searcher) -> QuantizedSearcher:
    return QuantizedSearcher(searcher.config, widened(searcher._arrays()))


def assert_same_results(a, b, queries, **knobs):
    ids_a, scores_a = a.search_batched(queries, **knobs)
    ids_b, scores_b = b.search_batched(queries, **knobs)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(scores_a, scores_b)
    for q, want in zip(queries[:5], ids_a):
        np.testing.assert_array_equal(a.search(q, **knobs)[0], want)


@pytest.mark.parametrize("measure,soar", [("squared_l2", None), ("squared_l2", 1.5), ("dot_product", None),
                                          ("dot_product", 1.0)])
def test_integer_data_is_held_in_bfloat16_with_identical_results(rng, measure, soar):
    x = integer_data(rng)
    x[100:110] = x[0]  # duplicates: ties broken the same way
    queries = np.concatenate([integer_data(rng, 40), x[:3]])
    held = build(x, measure, soar)
    assert held.config.reorder.dtype == "float32" and held_in(held) == np.uint16
    assert "held in bfloat16, exact" in repr(held)
    full = as_float32_copy(held)
    assert held_in(full) == np.float32
    assert np.asarray(held._arrays()["rows"]).nbytes * 2 == np.asarray(full._arrays()["rows"]).nbytes
    for leaves, pre in ((1, 10), (5, 40), (20, 3000)):
        assert_same_results(held, full, queries, leaves_to_search=leaves, pre_reorder_num_neighbors=pre)
    # Every leaf, every candidate: exact search.
    ids, scores = held.search_batched(queries, leaves_to_search=20, pre_reorder_num_neighbors=3000)
    want_ids, want_scores = exact_topk(x, queries, 10, measure)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_array_equal(ids, want_ids)  # integer sums are exact in float32 here, ties too
    np.testing.assert_array_equal(held.vectors(np.arange(len(x))), x)


def test_other_data_and_other_dtypes_are_held_as_asked(rng):
    x = integer_data(rng)
    assert held_in(build(x + np.float32(0.001))) == np.float32
    assert held_in(build(x / np.float32(3.0))) == np.float32
    assert held_in(build(x, dtype="bfloat16")) == np.uint16
    assert build(x, dtype="bfloat16").config.reorder.dtype == "bfloat16"
    assert held_in(build(x, dtype="int8")) == np.int8
    # Cosine stores unit rows, which integers rarely are in bfloat16.
    assert held_in(build(x + 1, "cosine")) == np.float32
    assert exact_in_bfloat16(np.array([[0.0, -256.0, 1.5, 2.0**100]], np.float32))
    assert not exact_in_bfloat16(np.array([[257.0]], np.float32))


def test_upserts_keep_the_index_exact(rng):
    x = integer_data(rng)
    queries = integer_data(rng, 30).astype(np.float32) + np.float32(0.25)
    held = build(x)
    held.upsert(np.array([9000, 9001]), x[:2] + 1)  # bfloat16 holds these: still half the bytes
    assert held_in(held) == np.uint16
    new = x[2:40] + np.float32(0.3)  # these it cannot hold: the copy is widened first
    held.upsert(np.arange(9002, 9040), new)
    assert held_in(held) == np.float32 and "held in" not in repr(held)
    np.testing.assert_array_equal(held.vectors(np.arange(9002, 9040)), new)
    everything = np.concatenate([x, x[:2] + 1, new])
    ids_of = np.concatenate([np.arange(len(x)), [9000, 9001], np.arange(9002, 9040)])
    ids, scores = held.search_batched(queries, leaves_to_search=20, pre_reorder_num_neighbors=len(everything))
    want, want_scores = exact_topk(everything, queries, 10, "squared_l2")
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(ids_of[want], axis=1))


def test_points_placed_elsewhere_in_float32_widen_the_copy(rng):
    from annlib.quantized.layout import upsert_arguments
    from annlib.quantized.placement import place_in_index
    x = integer_data(rng)
    held = build(x)
    state = held._state
    placed = place_in_index(state.config, state.arrays, x[:5] + 1)  # packed as the config says: float32
    held.upsert_placed(np.arange(7000, 7005), upsert_arguments(placed))
    assert held_in(held) == np.float32
    np.testing.assert_array_equal(held.vectors(np.arange(7000, 7005)), x[:5] + 1)


def test_an_index_trained_on_integer_data_and_filled_by_upserts_holds_it_as_a_build_does(rng):
    x = integer_data(rng)
    queries = integer_data(rng, 40)
    stages = annlib.builder(x, 10, "squared_l2").tree(20, 5, soar_lambda=1.5).score_ah(2).reorder(40)
    grown = stages.train(progress=False)
    assert held_in(grown) == np.uint16  # empty, but in the dtype a build of this data holds
    for start in range(0, len(x), 700):
        grown.upsert(np.arange(start, min(start + 700, len(x))), x[start:start + 700])
    assert held_in(grown) == np.uint16
    assert_same_results(stages.build(progress=False), grown, queries, leaves_to_search=7,
                        pre_reorder_num_neighbors=40)
    # A point bfloat16 cannot hold still widens the copy first.
    grown.upsert(np.array([5000]), x[:1] + np.float32(0.3))
    assert held_in(grown) == np.float32
    np.testing.assert_array_equal(grown.vectors(np.array([5000, 1])), [x[0] + np.float32(0.3), x[1]])


def test_points_placed_for_a_narrower_copy_are_widened_for_a_float32_one(rng):
    from annlib.quantized.layout import upsert_arguments
    from annlib.quantized.placement import place_in_index
    from annlib.quantized.reorder_copy import rows_dtype_to_add
    x = integer_data(rng)
    held = build(x)
    state = held._state
    assert rows_dtype_to_add(state.config, state.arrays, x[:5]) == "bfloat16"
    assert rows_dtype_to_add(state.config, state.arrays, x[:5] + np.float32(0.3)) is None
    placed = place_in_index(state.config, state.arrays, x[:5] + 1, rows_dtype="bfloat16")
    full = as_float32_copy(held)  # a sharded index's shard that an earlier upsert widened
    full.upsert_placed(np.arange(7000, 7005), upsert_arguments(placed))
    assert held_in(full) == np.float32
    np.testing.assert_array_equal(full.vectors(np.arange(7000, 7005)), x[:5] + 1)
    held.upsert_placed(np.arange(7000, 7005), upsert_arguments(placed))
    assert held_in(held) == np.uint16
    assert_same_results(held, full, integer_data(rng, 30), leaves_to_search=20, pre_reorder_num_neighbors=100)


def test_save_and_load_keep_the_copy_and_the_results(rng, tmp_path):
    x = integer_data(rng)
    queries = integer_data(rng, 80)
    held = build(x, soar=1.5)
    held.save(tmp_path / "index")
    loaded = annlib.load(tmp_path / "index")
    assert held_in(loaded) == np.uint16 and loaded.config == held.config
    assert_same_results(held, loaded, queries, leaves_to_search=7, pre_reorder_num_neighbors=40)
    # The tuner reads the exact vectors back from it as from a float32 copy.
    result = annlib.tune(loaded, queries, target_recall=0.9, progress=False)
    assert result.params.leaves_to_search >= 1


def test_a_copy_held_in_another_dtype_than_its_config_allows_is_refused(rng):
    held = build(integer_data(rng))
    arrays = dict(held._arrays(), rows=np.zeros_like(np.asarray(held._arrays()["rows"]), dtype=np.int8))
    with pytest.raises(ValueError, match="held in int8, but its config asks for float32"):
        QuantizedSearcher(held.config, arrays)
    arrays = dict(held._arrays(), rows=np.zeros(np.asarray(held._arrays()["rows"]).shape, np.float64))
    with pytest.raises(ValueError, match="of an unknown type"):
        QuantizedSearcher(held.config, arrays)


def test_every_simd_level_rescores_the_bfloat16_copy_as_its_float32_one(rng, simd_level):
    x = integer_data(rng, d=40)  # 40: rows padded past a vector width
    queries = integer_data(rng, 30, d=40) + np.float32(0.5)  # queries need not be integers
    held = build(x, soar=1.5).with_simd_level(simd_level)
    full = as_float32_copy(held).with_simd_level(simd_level)
    assert held.simd_level == full.simd_level == simd_level
    assert_same_results(held, full, queries, leaves_to_search=6, pre_reorder_num_neighbors=100)
