"""SOAR spilling: the spill assignment against a NumPy evaluation of the loss,
recall gained at a fixed number of leaves, duplicates never returned, save/load,
every search override, and bad configurations."""
import numpy as np
import pytest

import annlib
from annlib import _core

from conftest import clustered, exact_topk, recall

MEASURES = ["dot_product", "squared_l2", "cosine"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    # Few wide clusters split over many leaves: many true neighbors sit in a
    # leaf next to the query's.
    x, q = clustered(rng, 6000, 32, clusters=10, spread=1.0, nq=300)
    return x + 0.3, q + 0.3


def build(x, measure, *, soar_lambda=1.0, leaves=60, search=4, reorder=100, overretrieve_factor=2.0):
    b = annlib.builder(x, 10, measure).tree(leaves, search, soar_lambda=soar_lambda,
                                            overretrieve_factor=overretrieve_factor).score_ah(2)
    if reorder:
        b = b.reorder(reorder)
    return b.build(progress=False)


@pytest.fixture(scope="module")
def spilled(data):
    x, _ = data
    return {m: build(x, m) for m in MEASURES}


def numpy_soar_loss(x, centers, primary, lam):
    diff = x[:, None, :].astype(np.float64) - centers[None].astype(np.float64)
    r = diff[np.arange(len(x)), primary]
    norm = np.linalg.norm(r, axis=1, keepdims=True)
    r_hat = np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)  # on its center: no direction
    return (diff ** 2).sum(-1) + lam * np.einsum("nld,nd->nl", diff, r_hat) ** 2


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5])
def test_spill_assignment_matches_numpy(lam, simd_level):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    centers = rng.standard_normal((45, 20)).astype(np.float32)
    primary = ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1).astype(np.int64)
    loss = numpy_soar_loss(x, centers, primary, lam)
    got = _core.soar_assign(x, centers, primary, lam, 0, simd_level)
    # Float32 GEMM vs float64 reference: the chosen center's loss is the minimum
    # up to rounding (exact argmin ties aside).
    chosen = loss[np.arange(len(x)), got]
    np.testing.assert_allclose(chosen, loss.min(1), rtol=1e-5, atol=1e-4)
    assert (got == loss.argmin(1)).mean() >= 0.99
    if lam == 0.0:  # plain distance: the argmin is the primary center itself
        assert (got == primary).all()


@pytest.mark.parametrize("num_centers", [1, 3, 9, 300])
def test_spill_assignment_on_clustered_data_matches_numpy(num_centers, simd_level):
    """Centers trained on the data (many near-equal losses), more or fewer of them than
    the nearest ones scored first, a partial last chunk of points."""
    rng = np.random.default_rng(num_centers)
    x = clustered(rng, 3001, 24, clusters=40, spread=0.4)
    centers = annlib.quantized.training.kmeans(x, num_centers, iterations=4, training_sample_size=3001,
                                               num_threads=1) if num_centers > 1 else x[:1].copy()
    primary = ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1).astype(np.int64)
    loss = numpy_soar_loss(x, centers, primary, 1.5)
    got = _core.soar_assign(x, centers, primary, 1.5, 2, simd_level)
    chosen = loss[np.arange(len(x)), got]
    np.testing.assert_allclose(chosen, loss.min(1), rtol=1e-5, atol=1e-4)
    assert (got == loss.argmin(1)).mean() >= 0.99


def test_spill_assignment_ties_go_to_the_smaller_center(simd_level):
    """Every center twice: equal losses, found in any order, go to the first copy; a
    point on its center (no residual direction) spills nowhere but to a twin."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((20, 8)).astype(np.float32)
    centers = np.concatenate([base, base])
    x = np.concatenate([rng.standard_normal((500, 8)).astype(np.float32), base[:5]])
    primary = ((x[:, None] - base[None]) ** 2).sum(-1).argmin(1).astype(np.int64) + 20  # the second copies
    got = _core.soar_assign(x, centers, primary, 1.0, 0, simd_level)
    assert (got < 20).all()
    assert (got[-5:] == np.arange(5)).all()


@pytest.mark.parametrize("num_centers", [1, 7, 300])
def test_both_leaves_in_one_pass_match_the_exact_search_and_the_spill_rule(num_centers, simd_level):
    """nearest_and_spill: the nearest center is the one an exact search of the centers
    gives (the same float32 scores, so no tolerance), and the spill center is what
    soar_assign chooses given that primary."""
    rng = np.random.default_rng(num_centers)
    x = clustered(rng, 2049, 24, clusters=30, spread=0.4)
    centers = annlib.quantized.training.kmeans(x, num_centers, iterations=3, training_sample_size=2049,
                                               num_threads=1) if num_centers > 1 else x[:1].copy()
    nearest, spill = _core.nearest_and_spill(x, centers, 1.5, 2, simd_level)
    assert nearest.dtype == spill.dtype == np.int32 and nearest.shape == spill.shape == (len(x),)
    searched = annlib.quantized.training.assign(x, centers, num_threads=2)[0]
    np.testing.assert_array_equal(nearest, searched)
    np.testing.assert_array_equal(spill, _core.soar_assign(x, centers, searched, 1.5, 1, simd_level))


def test_both_leaves_in_one_pass_break_ties_as_the_search(simd_level):
    """Integer data on integer centers: many exactly equal distances, which go to the
    smaller center, as the exact search's top-1 breaks them; every center twice."""
    rng = np.random.default_rng(9)
    base = rng.integers(0, 4, (30, 6)).astype(np.float32)
    centers = np.concatenate([base, base])
    x = rng.integers(0, 4, (4000, 6)).astype(np.float32)
    nearest, spill = _core.nearest_and_spill(x, centers, 1.0, 0, simd_level)
    searched = annlib.quantized.training.assign(x, centers, num_threads=2)[0]
    np.testing.assert_array_equal(nearest, searched)
    assert (nearest < 30).all() and (spill < 30).all()
    d2 = ((x[:, None] - centers[None]) ** 2).sum(-1)
    first_best = d2.argmin(1)  # numpy's argmin: the first of equal minima
    np.testing.assert_array_equal(nearest, first_best)


@pytest.mark.parametrize("x, centers, match", [
    (np.zeros(8, np.float32), np.zeros((3, 8), np.float32), "2-D"),
    (np.zeros((4, 8), np.float32), np.zeros((3, 7), np.float32), "same d"),
    (np.zeros((4, 8), np.float32), np.zeros((0, 8), np.float32), "2-D"),
])
def test_both_leaves_reject_bad_shapes(x, centers, match):
    with pytest.raises(ValueError, match=match):
        _core.nearest_and_spill(x, centers, 1.0)
    with pytest.raises(ValueError, match="lambda"):
        _core.nearest_and_spill(np.zeros((4, 8), np.float32), np.zeros((3, 8), np.float32), -1.0)
    with pytest.raises(TypeError):
        _core.nearest_and_spill(np.zeros((4, 8)), np.zeros((3, 8)), 1.0)  # float64: no silent copy


@pytest.mark.parametrize("measure, augment_norms", [("squared_l2", False), ("dot_product", True), ("cosine", False)])
def test_a_build_finds_the_leaves_in_the_spill_pass_as_a_search_would(data, monkeypatch, measure, augment_norms):
    """With more points than the codebooks' sample, a SOAR build learns the other points'
    leaves in the spill assignment's pass; the index is the same, array for array, as
    when every leaf is searched for first (the build before that pass found them)."""
    from annlib.quantized import assignment, building
    x, _ = data

    def build_it():
        return annlib.builder(x, 10, measure).tree(60, 4, soar_lambda=1.0, augment_norms=augment_norms).score_ah(
            2, training_sample_size=1500).reorder(50).build(num_threads=2, progress=False)

    fused = build_it()._arrays()
    place, searched = building.place_points, []

    def leaves_searched_first(config, centroids, codebooks, points, *args, leaves=None, lift=None, **kwargs):
        if leaves is None:
            leaves = assignment.primary_leaves(points, centroids, lift, 2)
            searched.append(len(points))
        return place(config, centroids, codebooks, points, *args, leaves=leaves, lift=lift, **kwargs)

    monkeypatch.setattr(building, "place_points", leaves_searched_first)
    reference = build_it()._arrays()
    assert searched == [len(x)]  # the fused build had no leaves before placing
    assert fused.keys() == reference.keys()
    for name in fused:
        np.testing.assert_array_equal(np.asarray(fused[name]), np.asarray(reference[name]), err_msg=name)


def test_built_index_stores_points_in_primary_and_spill_leaf(data, spilled):
    """The leaves holding a handful of points are exactly {primary, argmin loss}."""
    x, _ = data
    s = spilled["squared_l2"]
    arrays = s._arrays()
    centers = arrays["centroids"]
    starts, slot_ids = arrays["leaf_starts"], arrays["slot_ids"]
    leaf_of_slot = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    picks = np.random.default_rng(0).choice(len(x), 25, replace=False)
    d2 = ((x[picks, None, :] - centers[None]) ** 2).sum(-1)
    primary = d2.argmin(1)
    loss = numpy_soar_loss(x[picks], centers, primary, 1.0)
    for i, p in enumerate(picks):
        stored = set(leaf_of_slot[slot_ids == p].tolist())
        assert stored == {int(primary[i]), int(loss[i].argmin())}


@pytest.mark.parametrize("measure", MEASURES)
def test_soar_raises_recall_at_fixed_leaves(data, spilled, measure):
    x, q = data
    truth, _ = exact_topk(x, q, 10, measure)
    plain = build(x, measure, soar_lambda=None)
    r_plain = recall(plain.search_batched(q)[0], truth)
    r_soar = recall(spilled[measure].search_batched(q)[0], truth)
    assert r_soar >= r_plain + 0.03, (r_plain, r_soar)


def assert_no_duplicates(ids):
    for row in np.atleast_2d(ids):
        valid = row[row >= 0]
        assert len(np.unique(valid)) == len(valid)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("reorder", [0, 100])
def test_no_id_returned_twice(data, measure, reorder, simd_level):
    x, q = data
    s = build(x, measure, reorder=reorder, overretrieve_factor=1.0).with_simd_level(simd_level)
    # Every leaf: every spilled point's two copies are both scanned.
    ids, scores = s.search_batched(q, leaves_to_search=s.num_leaves, final_num_neighbors=50)
    assert_no_duplicates(ids)
    assert (ids >= 0).all()
    assert (np.diff(scores, axis=1) <= 0).all() if measure != "squared_l2" else (np.diff(scores, axis=1) >= 0).all()
    for qi in q[:20]:
        assert_no_duplicates(s.search(qi, final_num_neighbors=50, leaves_to_search=s.num_leaves)[0])


def test_full_scan_is_exact_with_soar(data, spilled):
    x, q = data
    for measure, s in spilled.items():
        truth, true_scores = exact_topk(x, q, 10, measure)
        ids, scores = s.search_batched(q, leaves_to_search=s.num_leaves, pre_reorder_num_neighbors=len(x))
        assert recall(ids, truth) >= 0.999
        np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-3)


def test_dedup_keeps_the_reorder_budget(data, spilled):
    """The candidates rescored are distinct points (the scan keeps a point's best
    copy): a reorder budget of k still yields k distinct results."""
    x, q = data
    s = spilled["dot_product"]
    ids, _ = s.search_batched(q, pre_reorder_num_neighbors=10)
    assert (ids >= 0).all()
    assert_no_duplicates(ids)


@pytest.mark.parametrize("reorder", [0, 100])
def test_overretrieve_factor_has_no_effect(data, reorder):
    # Candidates are distinct points whatever the factor (accepted for ScaNN's configs):
    # the results of factor 1 are those of factor 2, ids and scores.
    x, q = data
    a = build(x, "dot_product", reorder=reorder, overretrieve_factor=1.0)
    b = build(x, "dot_product", reorder=reorder, overretrieve_factor=2.0)
    for kw in (dict(), dict(leaves_to_search=20, pre_reorder_num_neighbors=15 if reorder else None)):
        kw = {key: v for key, v in kw.items() if v is not None}
        for ra, rb in zip(a.search_batched(q, **kw), b.search_batched(q, **kw)):
            np.testing.assert_array_equal(ra, rb)


def test_save_load_and_overrides(tmp_path, data, spilled):
    x, q = data
    s = spilled["squared_l2"]
    s.save(tmp_path / "idx")
    loaded = annlib.load(tmp_path / "idx")
    assert loaded.config == s.config and loaded.config.tree.soar_lambda == 1.0
    kw = dict(final_num_neighbors=7, leaves_to_search=9, pre_reorder_num_neighbors=40)
    for a, b in zip(s.search_batched(q, **kw), loaded.search_batched(q, **kw)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s.search(q[0], **kw)[0], loaded.search(q[0], **kw)[0])
    assert loaded.search_batched(q)[0].shape == (len(q), 10)


def test_spilling_costs_at_most_one_extra_copy(data, spilled):
    x, _ = data
    arrays = spilled["dot_product"]._arrays()
    ids = arrays["slot_ids"]
    counts = np.bincount(ids[ids >= 0], minlength=len(x))
    assert counts.min() == 1 and counts.max() == 2
    assert (counts == 2).mean() > 0.5  # lambda = 1 spills most points


def test_corrupt_slot_ids_are_rejected(data, spilled):
    from annlib.quantized import QuantizedSearcher

    s = spilled["dot_product"]
    arrays = s._arrays()
    ids = arrays["slot_ids"].copy()
    valid = np.flatnonzero(ids >= 0)
    thrice = ids.copy()
    twice_id = np.bincount(ids[valid]).argmax()
    thrice[np.flatnonzero(ids == -1)[0]] = twice_id
    with pytest.raises(ValueError, match="more than twice"):
        QuantizedSearcher(s.config, dict(arrays, slot_ids=thrice))
    missing = ids.copy()
    missing[ids == ids[valid[0]]] = -1
    with pytest.raises(ValueError, match="miss datapoint"):
        QuantizedSearcher(s.config, dict(arrays, slot_ids=missing))


@pytest.mark.parametrize("kwargs, match", [
    (dict(soar_lambda=-1.0), "soar_lambda"),
    (dict(soar_lambda=float("nan")), "soar_lambda"),
    (dict(soar_lambda="1"), "soar_lambda"),
    (dict(soar_lambda=1.0, overretrieve_factor=0.5), "overretrieve_factor"),
    (dict(overretrieve_factor=float("inf")), "overretrieve_factor"),
])
def test_bad_soar_settings(data, kwargs, match):
    x, _ = data
    with pytest.raises(ValueError, match=match):
        annlib.builder(x, 10, "dot_product").tree(20, 2, **kwargs)


def test_config_round_trips_with_soar(data):
    x, _ = data
    cfg = annlib.builder(x, 10, "squared_l2").tree(20, 2, soar_lambda=1.5, overretrieve_factor=1.5).score_ah(2).config()
    from annlib.config import IndexConfig

    assert IndexConfig.from_json(cfg.to_json()) == cfg
