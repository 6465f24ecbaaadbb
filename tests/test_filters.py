"""Filtered search: allowlist= / denylist= as ids or boolean masks, applied
inside the LUT16 and brute-force kernels (checked at every SIMD level)."""
import numpy as np
import pytest

import annlib
from annlib import _core
from annlib.recall_math import id_recall
from conftest import clustered, exact_among, with_screen

LEVELS = annlib.available_simd_levels()
MEASURES = ["dot_product", "squared_l2", "cosine"]


def _data(rng, n, d, nq=0):
    """Clustered points (and queries around the same centers)."""
    return clustered(rng, n, d, clusters=40, spread=0.35, nq=nq)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return _data(rng, 8000, 24, 150)


@pytest.fixture(scope="module")
def indexes(data):
    x, _ = data
    return {m: (annlib.builder(x, 10, m).tree(80, 8, soar_lambda=1.5)
                .score_ah(2, anisotropic_quantization_threshold=None if m == "squared_l2" else 0.2)
                .reorder(80).build(progress=False)) for m in MEASURES}


@pytest.mark.parametrize("level", LEVELS)
def test_lut16_kernel_skips_points_outside_the_filter(rng, level):
    n, blocks = 300, 12
    codes = rng.integers(0, 16, (n, blocks), dtype=np.uint8)
    lut = rng.standard_normal((blocks, 16)).astype(np.float32)
    allowed = rng.random(n) < 0.3
    bits = np.packbits(np.concatenate([allowed, np.zeros(64 * 5 - n, bool)]), bitorder="little").view(np.uint64)
    ids, _ = _core.testing.Lut16Codes(codes).topk(lut, 20, simd_level=level, allowed=bits)
    assert allowed[ids].all()
    scores = lut[np.arange(blocks), codes].sum(1)
    best_allowed = np.flatnonzero(allowed)[np.argsort(-scores[allowed], kind="stable")[:20]]
    # LUT16 quantises the table to 8 bits, so near-ties may swap; the sets agree closely.
    assert len(set(ids) & set(best_allowed)) >= 17


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_brute_force_applies_the_filter_in_its_kernel(data, level, dtype):
    x, q = data
    base = annlib.builder(x, 10, "squared_l2").score_brute_force(dtype=dtype).build()
    s = base.with_simd_level(level)
    allowed = np.flatnonzero(np.arange(len(x)) % 7 == 3)
    ids, dist = s.search_batched(q, allowlist=allowed)
    assert np.isin(ids, allowed).all()
    # Exact for float32; bfloat16 and int8 round the data (Gaussian here, no integer structure).
    assert id_recall(ids, exact_among(x, q, 10, "squared_l2", allowed), 10) >= (0.999 if dtype == "float32" else 0.95)
    binned = annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.9).build()
    ids = binned.with_simd_level(level).search_batched(q, allowlist=allowed[:15])[0]
    assert (ids >= 0).all() and np.isin(ids, allowed[:15]).all()  # k come back whenever k are allowed
    # The screens (an int8 copy on x86) pick bin winners among the allowed points only.
    screened = binned.with_simd_level(level)
    ids = screened.search_batched(q, allowlist=allowed)[0]
    plain = with_screen(screened, 0).search_batched(q, allowlist=allowed)[0]
    assert np.isin(ids, allowed).all() and (ids == plain).mean() >= 0.99
    one = np.stack([screened.search(v, allowlist=allowed)[0] for v in q[:20]])
    np.testing.assert_array_equal(one, ids[:20])


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("share", [0.005, 0.05, 0.3, 0.8])
def test_filtered_results_are_allowed_and_match_exact_filtered_truth(data, indexes, measure, share):
    x, q = data
    rng = np.random.default_rng(int(share * 1000))
    allowed = np.sort(rng.choice(len(x), int(share * len(x)), replace=False))
    s = indexes[measure]
    ids, scores = s.search_batched(q, allowlist=allowed)
    assert np.isin(ids, allowed).all()  # and no padding: k allowed points exist
    assert id_recall(ids, exact_among(x, q, 10, measure, allowed), 10) >= 0.9
    mask = np.zeros(len(x), bool)
    mask[allowed] = True
    by_mask = s.search_batched(q, allowlist=mask)
    np.testing.assert_array_equal(by_mask[0], ids)
    single = np.stack([s.search(v, allowlist=allowed)[0] for v in q[:10]])
    np.testing.assert_array_equal(single, ids[:10])


@pytest.mark.parametrize("level", LEVELS)
def test_filtered_quantized_search_at_every_simd_level(data, indexes, level):
    x, q = data
    s = indexes["dot_product"].with_simd_level(level)
    allowed = np.flatnonzero(np.arange(len(x)) % 3 == 0)
    ids = s.search_batched(q, allowlist=allowed)[0]
    assert np.isin(ids, allowed).all()
    assert id_recall(ids, exact_among(x, q, 10, "dot_product", allowed), 10) >= 0.9


def test_denylist_and_both_together(data, indexes):
    x, q = data
    s = indexes["squared_l2"]
    plain = s.search_batched(q)[0]
    denied = np.unique(plain[:, :3])
    ids = s.search_batched(q, denylist=denied)[0]
    assert not np.isin(ids, denied).any()
    keep = np.setdiff1d(np.arange(len(x)), denied)
    assert id_recall(ids, exact_among(x, q, 10, "squared_l2", keep), 10) >= 0.9
    allow = np.arange(0, len(x), 2)
    both = s.search_batched(q, allowlist=allow, denylist=denied)[0]
    assert np.isin(both, allow).all() and not np.isin(both, denied).any()


def test_padding_when_fewer_than_k_are_allowed(data, indexes):
    x, q = data
    s = indexes["squared_l2"]
    allow = np.array([5, 17, 4000, 7999, 123456])  # 123456 is not in the index: ignored
    ids, dist = s.search_batched(q[:5], allowlist=allow)
    assert (np.sort(ids[:, :4], axis=1) == [5, 17, 4000, 7999]).all()
    assert (ids[:, 4:] == -1).all() and np.isinf(dist[:, 4:]).all() and (dist[:, 4:] > 0).all()
    ids, _ = s.search_batched(q[:5], allowlist=np.array([], np.int64))
    assert (ids == -1).all()


def test_filters_follow_updates_and_custom_ids(rng):
    x, q = _data(rng, 3000, 16, 50)
    ids = np.arange(3000) * 10 + 3
    s = (annlib.builder(x, 10, "dot_product", ids=ids).tree(30, 5).score_ah(2).reorder(50).build(progress=False))
    s.upsert(np.arange(100) * 10 + 100_000, x[:100] * 1.5)
    s.delete(ids[:50])
    allow = np.concatenate([ids[:200], np.arange(100) * 10 + 100_000])
    got = s.search_batched(q, allowlist=allow)[0]
    assert np.isin(got, allow).all() and not np.isin(got, ids[:50]).any()
    mask = np.zeros(100_000 + 1000, bool)
    mask[allow] = True
    np.testing.assert_array_equal(s.search_batched(q, allowlist=mask)[0], got)


def test_filter_errors_are_clear(data, indexes):
    x, q = data
    s = indexes["dot_product"]
    with pytest.raises(ValueError, match="entry for every id"):
        s.search_batched(q, allowlist=np.ones(100, bool))
    with pytest.raises(ValueError, match="entry for every id"):
        s.search(q[0], denylist=np.ones(len(x) - 1, bool))
    with pytest.raises(ValueError, match="entry for every id"):
        annlib.builder(x, 10, "dot_product").score_brute_force().build().search_batched(q, allowlist=np.ones(3, bool))
    with pytest.raises(TypeError, match="integer ids or booleans"):
        s.search_batched(q, allowlist=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        s.search_batched(q, allowlist=np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="negative"):
        s.search_batched(q, denylist=[-3])


def test_compiled_filters_match_plain_ones_and_follow_updates(rng):
    x, q = _data(rng, 4000, 16, 60)
    allow = np.arange(0, 4000, 3)
    deny = np.arange(0, 4000, 9)
    brute = annlib.builder(x, 10, "squared_l2").score_brute_force().build()
    quant = (annlib.builder(x, 10, "squared_l2").tree(40, 6, soar_lambda=1.5).score_ah(2).reorder(60)
             .build(progress=False))
    for s in (brute, quant):
        f = s.compile_filter(allowlist=allow, denylist=deny)
        plain = s.search_batched(q, allowlist=allow, denylist=deny)
        compiled = s.search_batched(q, allowlist=f)
        np.testing.assert_array_equal(plain[0], compiled[0])
        np.testing.assert_array_equal(np.stack([s.search(v, allowlist=f)[0] for v in q[:5]]), plain[0][:5])
        with pytest.raises(ValueError, match="denylist"):
            s.search_batched(q, allowlist=f, denylist=deny)
    with pytest.raises(ValueError, match="another index"):
        quant.search_batched(q, allowlist=brute.compile_filter(allowlist=allow))
    f = quant.compile_filter(allowlist=np.append(allow, 10**6))
    gone = quant.search_batched(q, allowlist=f)[0][:, 0]
    quant.delete(np.unique(gone))
    quant.upsert([10**6], q[:1])  # a new point the filter lists
    got = quant.search_batched(q, allowlist=f)[0]  # recompiled on its own
    assert not np.isin(got, gone).any() and got[0, 0] == 10**6
    assert np.isin(got, np.append(allow, 10**6)).all()
