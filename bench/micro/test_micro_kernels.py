"""Micro-benchmarks of the kernels at every SIMD level (pytest-benchmark).

    pytest bench/micro --benchmark-columns=mean,min,ops

Each benchmark records ns per unit of work in extra_info (per block and point
for LUT16; per multiply-add for the dense scan), printed at the end.
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


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("num_blocks", [64, 192])
def test_lut16_scan(benchmark, level, num_blocks):
    rng = np.random.default_rng(0)
    n = 100_000
    codes = _core.Lut16Codes(rng.integers(0, 16, (n, num_blocks)).astype(np.uint8))
    lut = rng.standard_normal((num_blocks, 16)).astype(np.float32)
    benchmark(codes.topk, lut, 100, None, level)
    ns = benchmark.stats.stats.min * 1e9 / (n * num_blocks)
    benchmark.extra_info["ns_per_block_point"] = ns
    REPORT.append(f"lut16 {level:12s} blocks={num_blocks:4d}: {ns:.4f} ns per block per point")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_dense_scan(benchmark, level, dtype):
    rng = np.random.default_rng(0)
    n, d, nq = 20_000, 128, 256
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    s = annlib.builder(x, 10, "dot_product").score_brute_force(dtype=dtype).build().with_simd_level(level)
    benchmark(s.search_batched, q, 10, 1)
    ns = benchmark.stats.stats.min * 1e9 / (n * d * nq)
    benchmark.extra_info["ns_per_mac"] = ns
    REPORT.append(f"dense {level:12s} {dtype:9s}: {ns * 1e3:.2f} ps per multiply-add (1 thread)")
