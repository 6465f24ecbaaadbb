"""MultiVectorIndex: MaxSim kernel vs a float64 reference at every SIMD level,
re-ranking, candidates, save/load, bad input; recall on the dev set."""
import numpy as np
import pytest

import annlib
from annlib import _core
from conftest import shared_dataset


def synthetic_corpus(rng, num_docs=300, dim=48, topics=12):
    """Documents whose tokens come from a few topics; pooled = normalised mean."""
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    lengths = rng.integers(1, 24, num_docs)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    doc_topic = rng.integers(0, topics, num_docs)
    tokens = centers[np.repeat(doc_topic, lengths)] + 0.8 * rng.standard_normal((offsets[-1], dim))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    pooled = np.add.reduceat(tokens, offsets[:-1], axis=0)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled.astype(np.float32), tokens.astype(np.float32), offsets, centers


def query_for(rng, centers, m=6):
    t = centers[rng.integers(0, len(centers))] + 0.8 * rng.standard_normal((m, centers.shape[1]))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    pooled = t.mean(0)
    return (pooled / np.linalg.norm(pooled)).astype(np.float32), t.astype(np.float32)


def maxsim_reference(q, stored, offsets, ids):
    q64 = q.astype(np.float64)
    return np.array([(q64 @ stored[offsets[i]:offsets[i + 1]].astype(np.float64).T).max(1).sum() for i in ids])


@pytest.fixture
def corpus(rng):
    return synthetic_corpus(rng)


@pytest.mark.parametrize("token_dtype", ["float16", "int8"])
@pytest.mark.parametrize("dim", [5, 16, 37, 48])
def test_maxsim_kernel_matches_float64_reference(rng, simd_level, token_dtype, dim):
    lengths = rng.integers(1, 70, 60)  # spans several 32-token blocks and partial tiles
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.standard_normal((offsets[-1], dim)).astype(np.float32)
    if token_dtype == "float16":
        stored_tokens, scale = tokens.astype(np.float16), None
        stored = stored_tokens.astype(np.float32)
    else:
        scale = (np.abs(tokens).max(1) / 127).astype(np.float32)
        stored_tokens = np.rint(tokens / scale[:, None]).astype(np.int8)
        stored = stored_tokens.astype(np.float32) * scale[:, None]
    scorer = _core.MaxSimScorer(stored_tokens, scale, offsets, simd_level)
    for m in (1, 3, 4, 9):
        q = rng.standard_normal((m, dim)).astype(np.float32)
        ids = rng.permutation(60)[:45].astype(np.int64)
        got = scorer.scores(q, ids, 2)
        np.testing.assert_allclose(got, maxsim_reference(q, stored, offsets, ids), rtol=1e-4, atol=1e-4)


def test_float16_decoding_covers_subnormals_and_extremes(simd_level):
    values = np.array([[0.0, -0.0, 6e-8, -6e-8, 1e-5, 65504.0, -65504.0, 1.0]], dtype=np.float16)
    offsets = np.array([0, 1], dtype=np.int64)
    scorer = _core.MaxSimScorer(values, None, offsets, simd_level)
    for t in range(values.shape[1]):
        q = np.zeros((1, values.shape[1]), np.float32)
        q[0, t] = 1.0
        assert scorer.scores(q, np.array([0], np.int64), 1)[0] == np.float32(values[0, t])


def test_scorer_refuses_a_store_that_does_not_hold_together():
    """The engine's MaxSimIndex checks the token store once, with clear errors."""
    f16 = np.ones((4, 8), np.float16)
    i8 = np.ones((4, 8), np.int8)
    offsets = np.array([0, 1, 4], np.int64)
    scale = np.ones(4, np.float32)
    bad = [
        ((f16, scale, offsets), "take no token_scale"),
        ((i8, None, offsets), "need token_scale"),
        ((i8, scale[:3], offsets), "one entry per token"),
        ((f16.astype(np.float32), None, offsets), "float16 or int8"),
        ((np.ones((4, 0), np.float16), None, offsets), "dim >= 1"),
        ((f16, None, np.array([0], np.int64)), ">= 2 entries"),
        ((f16, None, np.array([0, 2, 2, 4], np.int64)), "has no tokens"),
        ((f16, None, np.array([0, 1, 3], np.int64)), "must end at"),
    ]
    for args, message in bad:
        with pytest.raises(ValueError, match=message):
            _core.MaxSimScorer(*args)
    scorer = _core.MaxSimScorer(i8, scale, offsets)
    with pytest.raises(ValueError, match="out of range"):
        scorer.scores(np.ones((1, 8), np.float32), np.array([2], np.int64), 1)
    with pytest.raises(ValueError, match="m >= 1"):
        scorer.scores(np.ones((0, 8), np.float32), np.array([0], np.int64), 1)


def test_rerank_orders_by_exact_maxsim_with_id_tiebreak(rng, corpus):
    pooled, tokens, offsets, centers = corpus
    index = annlib.MultiVectorIndex.build(pooled, tokens, offsets, token_index=False, progress=False)
    _, q = query_for(rng, centers)
    cands = rng.permutation(len(pooled))[:50]
    ids, scores = index.rerank(q, cands, 10)
    stored = tokens.astype(np.float16).astype(np.float32)
    ref = maxsim_reference(q, stored, offsets, cands)
    order = np.lexsort((cands, -ref))[:10]
    np.testing.assert_array_equal(ids, cands[order])
    np.testing.assert_allclose(scores, ref[order], rtol=1e-4, atol=1e-4)
    # A document listed twice with itself: identical scores, smaller id first.
    dup_tokens = np.concatenate([tokens[:5], tokens[:5]])
    twins = annlib.MultiVectorIndex.build(pooled[:2], dup_tokens, [0, 5, 10], num_neighbors=2, token_index=False,
                                          progress=False)
    assert twins.rerank(q, [1, 0], 2)[0].tolist() == [0, 1]


@pytest.mark.parametrize("token_index", [False, True])
def test_search_finds_exact_maxsim_top10(rng, corpus, token_index):
    pooled, tokens, offsets, centers = corpus
    index = annlib.MultiVectorIndex.build(pooled, tokens, offsets, token_index=token_index, progress=False)
    stored = tokens.astype(np.float16).astype(np.float32)
    found = []
    for _ in range(40):
        qv, qt = query_for(rng, centers)
        ids, scores = index.search(qv, qt, 10, num_candidates=100)
        truth = np.argsort(-maxsim_reference(qt, stored, offsets, np.arange(len(pooled))), kind="stable")[:10]
        found.append(len(np.intersect1d(ids, truth)) / 10)
        assert np.all(np.diff(scores) <= 1e-6)
    assert np.mean(found) >= 0.95


def test_token_candidates_only_without_query_vector(rng, corpus):
    pooled, tokens, offsets, centers = corpus
    index = annlib.MultiVectorIndex.build(pooled, tokens, offsets, progress=False)
    qv, qt = query_for(rng, centers)
    ids, _ = index.search(None, qt, 5, num_candidates=50)
    assert ids.shape == (5,) and (ids >= 0).all()
    pooled_only = annlib.MultiVectorIndex.build(pooled, tokens, offsets, token_index=False, progress=False)
    with pytest.raises(ValueError, match="query_vector"):
        pooled_only.search(None, qt, 5)


@pytest.mark.parametrize("token_dtype", ["float16", "int8"])
def test_save_load_round_trip_memory_maps_tokens(tmp_path, rng, corpus, token_dtype):
    pooled, tokens, offsets, centers = corpus
    index = annlib.MultiVectorIndex.build(pooled, tokens, offsets, token_dtype=token_dtype, progress=False)
    index.save(tmp_path / "mv")
    loaded = annlib.load(tmp_path / "mv")
    assert isinstance(loaded, annlib.MultiVectorIndex)
    assert isinstance(loaded._tokens, np.memmap)
    assert loaded.token_dtype == token_dtype and loaded.bytes_per_token == index.bytes_per_token
    assert index.bytes_per_token == (2 * 48 if token_dtype == "float16" else 48 + 4)
    qv, qt = query_for(rng, centers)
    for a, b in zip(index.search(qv, qt, 10), loaded.search(qv, qt, 10)):
        np.testing.assert_array_equal(a, b)


def test_corrupt_token_store_is_rejected(tmp_path, rng, corpus):
    pooled, tokens, offsets, _ = corpus
    annlib.MultiVectorIndex.build(pooled, tokens, offsets, token_index=False, progress=False).save(tmp_path / "mv")
    path = tmp_path / "mv" / "tokens.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        annlib.load(tmp_path / "mv")
    import shutil
    shutil.rmtree(tmp_path / "mv" / "documents")
    with pytest.raises(ValueError, match="missing"):
        annlib.load(tmp_path / "mv", verify=False)


def test_bad_input_gives_clear_errors(rng, corpus):
    pooled, tokens, offsets, centers = corpus
    build = annlib.MultiVectorIndex.build
    with pytest.raises(ValueError, match="num_docs \\+ 1"):
        build(pooled, tokens, offsets[:-1], progress=False)
    with pytest.raises(ValueError, match="no token vectors"):
        bad = offsets.copy()
        bad[3] = bad[2]
        build(pooled, tokens, bad, progress=False)
    with pytest.raises(ValueError, match="end at the number of token rows"):
        build(pooled, tokens[:-1], offsets, progress=False)
    with pytest.raises(ValueError, match="float16's range"):
        build(pooled, tokens * 1e6, offsets, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        t = tokens.copy()
        t[7, 2] = np.nan
        build(pooled, t, offsets, progress=False)
    with pytest.raises(ValueError, match="token_dtype"):
        build(pooled, tokens, offsets, token_dtype="bfloat16", progress=False)
    index = build(pooled, tokens, offsets, token_index=False, progress=False)
    qv, qt = query_for(rng, centers)
    with pytest.raises(ValueError, match="dimension"):
        index.rerank(qt[:, :10], [0, 1])
    with pytest.raises(ValueError, match="outside"):
        index.rerank(qt, [0, len(pooled)], 1)
    with pytest.raises(ValueError, match="duplicates"):
        index.rerank(qt, [3, 3], 1)
    with pytest.raises(ValueError, match="exceeds the 2 candidates"):
        index.rerank(qt, [1, 2], 3)
    with pytest.raises(TypeError, match="integer"):
        index.rerank(qt, [1.5, 2.0], 1)
    with pytest.raises(ValueError, match="num_candidates"):
        index.search(qv, qt, 10, num_candidates=5)
    with pytest.raises(ValueError, match="NaN"):
        index.search(qv, np.full_like(qt, np.nan), 10)


def test_wordnet_dev_set_recovers_exact_maxsim_top10():
    import h5py

    with h5py.File(shared_dataset("wordnet-multivector-4k.hdf5"), "r") as f:
        data = {k: f[k][()] for k in ("doc_pooled", "doc_tokens", "doc_offsets", "query_pooled", "query_tokens",
                                      "query_offsets", "maxsim_neighbors")}
    index = annlib.MultiVectorIndex.build(data["doc_pooled"], data["doc_tokens"], data["doc_offsets"],
                                          progress=False)
    qo = data["query_offsets"]
    found = []
    for i in range(0, len(qo) - 1, 2):
        ids, _ = index.search(data["query_pooled"][i], data["query_tokens"][qo[i]:qo[i + 1]], 10, 100)
        found.append(len(np.intersect1d(ids, data["maxsim_neighbors"][i, :10])) / 10)
    assert np.mean(found) >= 0.95
