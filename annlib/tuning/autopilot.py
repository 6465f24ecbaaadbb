"""Build-time choices for builder(...).autopilot(): rules backed by the dev-set measurements.

Measured on words-100k-384 (inner product) and sift-150k-128 (L2) with
bench/run.py and bench/sweep_soar_lambda.py (README, Benchmarks):
  - below 20,000 points an exact brute-force scan costs about what a tree search
    does, and is exact: use it;
  - about 2*sqrt(n) leaves (rounded to 100): the leaf count every system was best at;
  - 4 dims per code block at d >= 256 (half the codes to scan, recall made up by
    reordering), 2 below;
  - the anisotropic threshold on inner-product data below recall 0.99 (0.2 at
    d <= 128, 0.1 above); plain PQ at 0.99 and for L2, where it did not help;
  - SOAR spilling (lambda SOAR_LAMBDA) on inner-product data, where it was 1.7x
    faster at recall 0.95; not for L2, where it did not pay on SIFT;
  - float32 reordering (exact, what the tuner's recall model assumes).
Then the index is built and tuned for the target with a database sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

BRUTE_FORCE_BELOW = 20_000
SOAR_LAMBDA = 1.5


def num_leaves_for(n: int) -> int:
    """About 2*sqrt(n), rounded to 100 (at least 200, at most n // 20)."""
    leaves = 2 * max(100, int(round(math.sqrt(n) / 100.0)) * 100)
    return max(1, min(leaves, n // 20))


@dataclass(frozen=True)
class BuildChoice:
    brute_force: bool
    num_leaves: int = 0
    dims_per_block: int = 2
    threshold: float | None = None
    soar_lambda: float | None = None


def choose_build(n: int, d: int, measure: str, target_recall: float | None) -> BuildChoice:
    if n < BRUTE_FORCE_BELOW:
        return BuildChoice(brute_force=True)
    dims_per_block = 4 if d >= 256 and d % 4 == 0 else (2 if d % 2 == 0 else 1)
    inner_product = measure != "squared_l2"
    threshold = None
    if inner_product and (target_recall is None or target_recall < 0.99):
        threshold = 0.2 if d <= 128 else 0.1
    return BuildChoice(False, num_leaves_for(n), dims_per_block, threshold, SOAR_LAMBDA if inner_product else None)
