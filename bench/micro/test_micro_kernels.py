"""Micro-benchmarks of every kernel at every SIMD level (pytest-benchmark).

    pytest bench/micro -s --benchmark-columns=mean,min,ops

Each benchmark stores its cost per unit of work in extra_info and prints one
line at the end: ns per code block per point for the LUT16 scan (one table, and
four over the same codes as the batched search scans them), ps per
multiply-add for the dense distance kernels and k-means assignment, ns per
scored point for top-k selection at several k, ns per (point, center) pair for
the SOAR spill assignment, us per point for AH encoding (plain and anisotropic),
ns per candidate document for MaxSim. All single
threaded, so the figures compare SIMD levels, not core counts.
"""
import numpy as np
import pytest

import annlib
from annlib import _core

LEVELS = annlib.available_simd_levels()
REPORT = []


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for line in REPORT:
        print(line)


def record(benchmark, key, value, line):
    benchmark.extra_info[key] = value
    REPORT.append(line)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("num_blocks", [64, 192])
@pytest.mark.parametrize("queries", [1, 4])
def test_lut16_scan(benchmark, level, num_blocks, queries):
    # queries=4: the batched search's kernel, four tables over the same codes in one pass.
    rng = np.random.default_rng(0)
    n = 100_000
    codes = _core.testing.Lut16Codes(rng.integers(0, 16, (n, num_blocks)).astype(np.uint8))
    luts = rng.standard_normal((queries, num_blocks, 16)).astype(np.float32)
    benchmark(codes.topk_many, luts, 100, level)
    ns = benchmark.stats.stats.min * 1e9 / (queries * n * num_blocks)
    record(benchmark, "ns_per_block_point", ns,
           f"lut16 x{queries} {level:12s} blocks={num_blocks:4d}: {ns:.4f} ns per block per point per query")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("measure", ["dot_product", "squared_l2"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_dense_distance(benchmark, level, measure, dtype):
    rng = np.random.default_rng(0)
    n, d, nq = 20_000, 128, 256
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    s = annlib.builder(x, 10, measure).score_brute_force(dtype=dtype).build().with_simd_level(level)
    benchmark(s.search_batched, q, final_num_neighbors=10, num_threads=1)
    ps = benchmark.stats.stats.min * 1e12 / (n * d * nq)
    record(benchmark, "ps_per_mac", ps, f"dense {level:12s} {measure:11s} {dtype:9s}: {ps:.2f} ps per multiply-add")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", [1, 10, 100, 1000])
def test_topk_selection(benchmark, level, k):
    """Top-k is fused into the dense kernel's epilogue; a low-dimensional scan makes the
    selection dominate, so the cost per scored point across k is the selection's."""
    rng = np.random.default_rng(0)
    n, d, nq = 100_000, 8, 64
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    s = annlib.builder(x, k, "dot_product").score_brute_force().build().with_simd_level(level)
    benchmark(s.search_batched, q, final_num_neighbors=k, num_threads=1)
    ns = benchmark.stats.stats.min * 1e9 / (n * nq)
    record(benchmark, "ns_per_scored_point", ns, f"top-k {level:12s} k={k:5d}: {ns:.3f} ns per scored point (d=8)")


@pytest.mark.parametrize("level", LEVELS)
def test_kmeans_assignment(benchmark, level):
    """Nearest-center assignment as the k-means trainer runs it (squared L2, k=1)."""
    rng = np.random.default_rng(0)
    n, d, num_centers = 20_000, 128, 1000
    x = rng.standard_normal((n, d)).astype(np.float32)
    centers = rng.standard_normal((num_centers, d)).astype(np.float32)
    packed = _core.pack_dense(centers, "float32", True, 1)
    packed["meta"] = np.array(centers.shape, np.int64)
    nearest = _core.DenseIndex(packed, _core.FORMAT_VERSION, "squared_l2", "float32", 1.0, level)
    benchmark(nearest.search, x, 1, 1)
    ps = benchmark.stats.stats.min * 1e12 / (n * num_centers * d)
    record(benchmark, "ps_per_mac", ps, f"k-means assign {level:12s}: {ps:.2f} ps per multiply-add "
                                        f"({n} points x {num_centers} centers)")


@pytest.mark.parametrize("level", LEVELS)
def test_soar_assignment(benchmark, level):
    rng = np.random.default_rng(0)
    n, d, num_centers = 20_000, 128, 400
    x = rng.standard_normal((n, d)).astype(np.float32)
    centers = rng.standard_normal((num_centers, d)).astype(np.float32)
    primary = rng.integers(0, num_centers, n).astype(np.int64)
    benchmark(_core.soar_assign, x, centers, primary, 1.5, 1, level)
    ns = benchmark.stats.stats.min * 1e9 / (n * num_centers)
    record(benchmark, "ns_per_pair", ns, f"soar assign {level:12s}: {ns:.3f} ns per (point, center) pair")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_ah_encoding(benchmark, level, threshold):
    rng = np.random.default_rng(0)
    n, d = 2_000, 384  # sentence-embedding sized, 2 dims per block
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    residuals = (0.5 * x + 0.02 * rng.standard_normal((n, d))).astype(np.float32)
    centers = (0.03 * rng.standard_normal((d // 2, 16, 2))).astype(np.float32)
    benchmark(_core.ah_encode, residuals, x, centers, threshold, d, 10, 1, level)
    us = benchmark.stats.stats.min * 1e6 / n
    kind = "anisotropic" if threshold else "plain"
    record(benchmark, "us_per_point", us, f"ah encode {level:12s} {kind:11s}: {us:.2f} us per point (d=384)")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("token_dtype", ["float16", "int8"])
def test_maxsim(benchmark, level, token_dtype):
    rng = np.random.default_rng(0)
    num_docs, tokens_per_doc, d = 5_000, 16, 128
    tokens = rng.standard_normal((num_docs * tokens_per_doc, d)).astype(np.float32)
    offsets = np.arange(0, num_docs * tokens_per_doc + 1, tokens_per_doc, dtype=np.int64)
    if token_dtype == "float16":
        stored, scale = tokens.astype(np.float16), None
    else:
        scale = (np.abs(tokens).max(axis=1) / 127.0).astype(np.float32)
        stored = np.round(tokens / scale[:, None]).astype(np.int8)
    scorer = _core.MaxSimScorer(stored, scale, offsets, level)
    query = rng.standard_normal((8, d)).astype(np.float32)
    candidates = rng.choice(num_docs, 1000, replace=False).astype(np.int64)
    benchmark(scorer.scores, query, candidates, 1)
    ns = benchmark.stats.stats.min * 1e9 / len(candidates)
    record(benchmark, "ns_per_document", ns, f"maxsim {level:12s} {token_dtype:7s}: {ns:.1f} ns per candidate "
                                             f"document ({tokens_per_doc} tokens, 8 query tokens, d={d})")
