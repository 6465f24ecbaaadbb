"""annlib's build defaults, in one place: what autopilot() builds, what a
multi-vector index builds for its document and token indexes, and what the
benchmarks and the ann-benchmarks wrapper measure as annlib's recommendation.

Backed by the dev-set measurements (words-100k-384, inner product, and
sift-150k-128, L2; README, Benchmarks):
  - below BRUTE_FORCE_BELOW points an exact brute-force scan costs about what a
    tree search does, and is exact: use it;
  - about 2*sqrt(n) leaves (rounded to 100): the leaf count every system was
    best at; 5% of them searched when the tuner then sets the knobs, 10% when
    nothing tunes the index;
  - 4 dims per code block at d >= 256 (half the codes to scan, recall made up by
    reordering), 2 below;
  - the anisotropic threshold on inner-product data below recall 0.99 (0.2 at
    d <= 128, 0.1 above); plain PQ at 0.99 and for L2, where it did not help;
  - SOAR spilling (lambda SOAR_LAMBDA) on inner-product data, where it was 1.7x
    faster at recall 0.95 (lambda 1.5-3 within about 10%); not for L2, where it
    did not pay on SIFT;
  - reordering from a float32 copy (exact, what the tuner's recall model assumes).
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


def dims_per_block_for(d: int) -> int:
    return 4 if d >= 256 and d % 4 == 0 else (2 if d % 2 == 0 else 1)


def threshold_for(d: int, measure: str, target_recall: float | None = None) -> float | None:
    """The anisotropic quantization threshold: inner-product data below recall 0.99 only."""
    if measure == "squared_l2" or (target_recall is not None and target_recall >= 0.99):
        return None
    return 0.2 if d <= 128 else 0.1


def soar_lambda_for(measure: str) -> float | None:
    return None if measure == "squared_l2" else SOAR_LAMBDA


@dataclass(frozen=True)
class BuildChoice:
    brute_force: bool
    num_leaves: int = 0
    leaves_to_search: int = 0
    dims_per_block: int = 2
    threshold: float | None = None
    soar_lambda: float | None = None


def choose_build(n: int, d: int, measure: str, target_recall: float | None = None, *,
                 tuned: bool = True, brute_force_below: int = BRUTE_FORCE_BELOW) -> BuildChoice:
    """The build for n points in d dims; `tuned`: the tuner sets the search knobs afterwards
    (else 10% of the leaves are searched by default)."""
    if n < brute_force_below or n < 20:
        return BuildChoice(brute_force=True)
    leaves = num_leaves_for(n)
    return BuildChoice(False, leaves, max(1, leaves // (20 if tuned else 10)), dims_per_block_for(d),
                       threshold_for(d, measure, target_recall), soar_lambda_for(measure))


def configure(builder, measure: str, *, target_recall: float | None = None, tuned: bool = True,
              pre_reorder_num_neighbors: int = 100, reorder_dtype: str = "float32"):
    """A builder (annlib.builder(...)) with the default stages for its data."""
    n, d = builder.shape
    pre_reorder_num_neighbors = max(pre_reorder_num_neighbors, builder.num_neighbors)
    choice = choose_build(n, d, measure, target_recall, tuned=tuned)
    if choice.brute_force:
        return builder.score_brute_force()
    return (builder.tree(choice.num_leaves, choice.leaves_to_search, soar_lambda=choice.soar_lambda)
            .score_ah(choice.dims_per_block, anisotropic_quantization_threshold=choice.threshold)
            .reorder(pre_reorder_num_neighbors, dtype=reorder_dtype))
