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
  - 2 dims per code block, 4 only at d >= 256 on k-means or augmented leaves for
    k below FOUR_DIMS_BELOW_K (dims_per_block_for): on words with spherical leaves and
    SOAR, 2 dims were faster at every recall at k=10, 30 and 100, single and batched;
    with k-means leaves and no SOAR (squared L2), 4 dims were 1.11-1.43x faster at
    k=10 (half the codes to scan where many leaves are searched) and 2 dims 1.04-1.29x
    faster at k=30 and 100: coarser codes need deeper re-ranking as k grows;
  - the anisotropic threshold on inner-product data below recall 0.99 (0.2 at
    d <= 128, 0.1 above, times the mean norm for dot product); plain PQ at 0.99 and
    for L2, where it did not help;
  - SOAR spilling (lambda SOAR_LAMBDA) where a test on the trained leaves says it
    saves scanning (soar_lambda="auto", annlib/quantized/soar_choice.py): on words
    (inner product) it was 1.7-2x faster at recall 0.90-0.95 (lambda 1.5-3 within about
    10%); on SIFT (L2) it did not pay, and the test says so. choose_build's
    soar_lambda (inner products only) is the prior for callers that cannot run the test;
  - how the leaves are drawn for inner product and cosine, from the spread of the
    vectors' norms (coefficient of variation, partitioning_for): spherical k-means
    for (near-)unit vectors, below 0.05, the norm-augmented reduction from there
    (docs/algorithms.md, section 4). On MiniLM words spherical leads plain k-means
    by 0.01-0.015 recall at equal points scanned; with lognormal(0, 0.5) norms the
    augmented leaves (with SOAR) reach 0.90/0.95 recall 1.35-1.9x faster than plain
    k-means leaves, where spherical leaves fail (0.3-0.5 recall); on Gaussian data
    (spread 0.06) augmented with SOAR beats both others at 10 and 20% of the leaves;
  - reordering from a float32 copy (exact, what the tuner's recall model assumes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BRUTE_FORCE_BELOW = 20_000
SOAR_LAMBDA = 1.5
FOUR_DIMS_BELOW_K = 20
AUGMENT_NORMS_FROM_CV = 0.05
NORM_SAMPLE = 10_000  # rows norm_cv() reads


def num_leaves_for(n: int) -> int:
    """About 2*sqrt(n), rounded to 100 (at least 200, at most n // 20)."""
    leaves = 2 * max(100, int(round(math.sqrt(n) / 100.0)) * 100)
    return max(1, min(leaves, n // 20))


def dims_per_block_for(d: int, k: int = 10, spherical: bool = False) -> int:
    """Dims per 4-bit code block for k neighbours over leaves drawn as `spherical` says:
    4 (half the codes to scan) only at d >= 256 for k below FOUR_DIMS_BELOW_K on
    k-means or augmented leaves, else 2 (1 for odd d). Coarser codes need more candidates
    re-ranked for the same recall, and that depth grows with k; spherical leaves with
    SOAR need few leaves, so the scan they save is small."""
    if d % 2:
        return 1
    if d >= 256 and d % 4 == 0 and k < FOUR_DIMS_BELOW_K and not spherical:
        return 4
    return 2


def threshold_for(d: int, measure: str, target_recall: float | None = None, norm_scale: float = 1.0) -> float | None:
    """The anisotropic quantization threshold: inner-product data below recall 0.99 only,
    in the data's units (norm_scale: its mean norm, 1 for unit vectors)."""
    if measure == "squared_l2" or (target_recall is not None and target_recall >= 0.99):
        return None
    return (0.2 if d <= 128 else 0.1) * (norm_scale if measure == "dot_product" else 1.0)


def soar_lambda_for(measure: str) -> float | None:
    return None if measure == "squared_l2" else SOAR_LAMBDA


def norm_stats(x, sample: int = NORM_SAMPLE) -> tuple[float, float]:
    """(mean, coefficient of variation) of the row norms, on about `sample` evenly spaced
    rows; (1, 0) for no rows."""
    x = np.asarray(x)
    if len(x) == 0:
        return 1.0, 0.0
    rows = x[:: max(1, len(x) // sample)]
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    mean = float(norms.mean())
    return (mean, float(norms.std() / mean)) if mean > 0 else (1.0, 0.0)


def norm_cv(x) -> float:
    """How much the row norms vary: their coefficient of variation (norm_stats)."""
    return norm_stats(x)[1]


def partitioning_for(measure: str, cv: float | None) -> tuple[bool, bool]:
    """(spherical, augment_norms) for data of this measure whose norms vary by `cv`
    (None: unknown, taken as equal norms)."""
    if measure == "squared_l2":
        return False, False
    if measure == "dot_product" and cv is not None and cv >= AUGMENT_NORMS_FROM_CV:
        return False, True
    return True, False


@dataclass(frozen=True)
class BuildChoice:
    brute_force: bool
    num_leaves: int = 0
    leaves_to_search: int = 0
    dims_per_block: int = 2
    threshold: float | None = None
    soar_lambda: float | None = None
    spherical: bool = False
    augment_norms: bool = False


def choose_build(n: int, d: int, measure: str, target_recall: float | None = None, *,
                 tuned: bool = True, brute_force_below: int = BRUTE_FORCE_BELOW,
                 norms: tuple[float, float] | None = None, k: int = 10) -> BuildChoice:
    """The build for n points in d dims whose norms have norm_stats() `norms` (None:
    unknown, taken as unit vectors), searched for k neighbours; `tuned`: the tuner sets
    the search knobs afterwards (else 10% of the leaves are searched by default)."""
    mean_norm, cv = norms if norms is not None else (1.0, None)
    if n < brute_force_below or n < 20:
        return BuildChoice(brute_force=True)
    leaves = num_leaves_for(n)
    spherical, augment_norms = partitioning_for(measure, cv)
    return BuildChoice(False, leaves, max(1, leaves // (20 if tuned else 10)),
                       dims_per_block_for(d, k, spherical), threshold_for(d, measure, target_recall, mean_norm),
                       soar_lambda_for(measure), spherical, augment_norms)


def configure(builder, measure: str, *, target_recall: float | None = None, tuned: bool = True,
              pre_reorder_num_neighbors: int = 100, reorder_dtype: str = "float32", size: int | None = None):
    """A builder (annlib.builder(...)) with the default stages for its data; size: the
    points the index will hold when the builder's rows are only a sample of them."""
    n, d = builder.shape
    n = n if size is None else size
    pre_reorder_num_neighbors = max(pre_reorder_num_neighbors, builder.num_neighbors)
    choice = choose_build(n, d, measure, target_recall, tuned=tuned, norms=norm_stats(builder.database),
                          k=builder.num_neighbors)
    if choice.brute_force:
        return builder.score_brute_force()
    # SOAR where the data says it pays (quantized/soar_choice.py), not by the measure alone.
    return (builder.tree(choice.num_leaves, choice.leaves_to_search, soar_lambda="auto",
                         spherical=choice.spherical, augment_norms=choice.augment_norms)
            .score_ah(choice.dims_per_block, anisotropic_quantization_threshold=choice.threshold)
            .reorder(pre_reorder_num_neighbors, dtype=reorder_dtype))
