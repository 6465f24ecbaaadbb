"""Bad input gets a clear ValueError/TypeError, never a crash or a wrong answer."""
import numpy as np
import pytest

import annlib


@pytest.fixture
def db(rng):
    return rng.standard_normal((100, 8)).astype(np.float32)


@pytest.fixture
def searcher(db):
    return annlib.builder(db, 5, "squared_l2").score_brute_force().build()


@pytest.mark.parametrize("bad,exc,match", [
    (np.zeros((10,), np.float32), ValueError, "2-D"),
    (np.zeros((2, 3, 4), np.float32), ValueError, "2-D"),
    (np.zeros((5, 0), np.float32), ValueError, "zero dimensions"),
    (np.array([["a", "b"]]), TypeError, "real numbers"),
    (np.array([[1 + 2j, 3j]]), TypeError, "real numbers"),
    (np.ones((3, 2), dtype=bool), TypeError, "real numbers"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf]]), ValueError, "NaN or infinity"),
    (np.full((2, 2), 1e30), ValueError, "too large"),
    ("not an array", TypeError, "real numbers"),
])
def test_bad_database(bad, exc, match):
    with pytest.raises(exc, match=match):
        annlib.builder(bad, 1, "dot_product")


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-1, ValueError), (101, ValueError), (2.5, TypeError),
                                   (True, TypeError), ("3", TypeError)])
def test_bad_k(db, searcher, k, exc):
    with pytest.raises(exc):
        annlib.builder(db, k, "dot_product")
    with pytest.raises(exc):
        searcher.search(db[0], final_num_neighbors=k)
    with pytest.raises(exc):
        searcher.search_batched(db[:2], final_num_neighbors=k)


def test_bad_queries(searcher, db):
    with pytest.raises(ValueError, match="dimension 7"):
        searcher.search(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="dimension"):
        searcher.search_batched(np.zeros((3, 9), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        searcher.search_batched(np.full((2, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="one query"):
        searcher.search(db[:2])
    with pytest.raises(ValueError, match="2-D"):
        searcher.search_batched(db[0])
    with pytest.raises(ValueError, match="2-D"):
        searcher.search_batched(db[None])
    with pytest.raises(TypeError):
        searcher.search_batched(db[:2].astype(object))
    with pytest.raises(ValueError, match="num_threads"):
        searcher.search_batched(db[:2], num_threads=-1)


def test_non_contiguous_and_other_dtypes_are_converted_once(searcher, db):
    ids_ref, scores_ref = searcher.search_batched(db[:10])
    fortran = np.asfortranarray(db[:10].astype(np.float64))
    strided = np.repeat(db[:10], 2, axis=1)[:, ::2]
    for q in (fortran, strided, db[:10].tolist(), db[:10].astype(np.float16).astype(np.float32)):
        ids, _ = searcher.search_batched(q)
        assert (ids[:, 0] == ids_ref[:, 0]).all()
    ints = annlib.builder(np.arange(40).reshape(10, 4), 2, "squared_l2").score_brute_force().build()
    assert ints.search([0, 1, 2, 3])[0][0] == 0


def test_bad_builder_arguments(db):
    with pytest.raises(ValueError, match="distance_measure"):
        annlib.builder(db, 1, "manhattan")
    with pytest.raises(ValueError, match="recall_target"):
        annlib.builder(db, 1, "dot_product").score_brute_force(recall_target=0)
    with pytest.raises(ValueError, match="recall_target"):
        annlib.builder(db, 1, "dot_product").score_brute_force(recall_target=1.5)
    with pytest.raises(ValueError, match="dtype"):
        annlib.builder(db, 1, "dot_product").score_brute_force(dtype="float16")
    with pytest.raises(ValueError, match="no scoring stage"):
        annlib.builder(db, 1, "dot_product").build()


def test_cosine_rejects_zero_vectors(db):
    bad = db.copy()
    bad[3] = 0
    with pytest.raises(ValueError, match="row 3 is all zeros"):
        annlib.builder(bad, 1, "cosine").score_brute_force().build()
    s = annlib.builder(db, 1, "cosine").score_brute_force().build()
    with pytest.raises(ValueError, match="all zeros"):
        s.search(np.zeros(8, np.float32))


@pytest.mark.parametrize("dim", [1, 7, 8, 9, 17, 384])
def test_row_checks_see_every_dimension(dim):
    """The squared norm is summed in eight running sums and a tail: a bad value anywhere
    in a row is found, in the row it is in, and the norm is the row's whole norm."""
    from annlib import _core
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((5, dim)).astype(np.float32)
    for column in sorted({0, dim // 2, dim - 1}):
        for value in (np.nan, np.inf, -np.inf):
            bad = x.copy()
            bad[3, column] = value
            with pytest.raises(ValueError, match=r"NaN or infinity.*row 3"):
                _core.check_rows(bad, "dot_product", "queries")
    # Finite values whose squares sum past float32's largest (each square fits when dim > 1).
    big = np.full((2, dim), np.sqrt(np.finfo(np.float32).max / dim) * 1.01, np.float32)
    with pytest.raises(ValueError, match="too large"):
        _core.check_rows(big, "squared_l2", "queries")
    unit = _core.normalized_rows(x, "queries")
    expected = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(unit, expected, rtol=2e-7, atol=0)
    raw = rng.standard_normal((5, 3)).astype(np.float32)
    norms = (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_core.raw_to_metric(x, raw, "squared_l2"), np.maximum(norms - 2 * raw, 0), rtol=1e-6)
    np.testing.assert_array_equal(_core.raw_to_metric(x, raw, "cosine"), raw)


def test_int8_brute_force_refuses_more_dimensions_than_its_sums_hold(rng):
    """int8 scores are int32 sums of up to 127 x 127 per dimension: exact up to 133,144
    dimensions. A wider int8 index is refused with a clear error, not scored wrongly."""
    x = rng.standard_normal((2, 133_145)).astype(np.float32)
    with pytest.raises(ValueError, match="at most 133144 dimensions"):
        annlib.builder(x, 1, "dot_product").score_brute_force(dtype="int8").build()
    x = 1.5 * np.sign(rng.standard_normal((3, 133_144))).astype(np.float32)  # every code +-127
    for level in annlib.available_simd_levels():  # the largest sums each int8 kernel holds
        s = annlib.builder(x, 3, "dot_product").score_brute_force(dtype="int8").build().with_simd_level(level)
        ids, scores = s.search(x[0])
        assert ids[0] == 0 and scores[0] == pytest.approx(1.5**2 * 133_144, rel=1e-5)
