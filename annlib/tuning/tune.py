"""annlib.tune(): search settings for a target recall or a latency budget, validated on held-out queries."""
from __future__ import annotations

import time

import numpy as np

from .._progress import progress_bar, wanted
from .._validate import as_float_matrix, check_k, check_num_threads
from ..config import BruteForceConfig, IndexConfig
from ..quantized import QuantizedSearcher
from ..searcher import BruteForceSearcher
from .cost import CostModel, measure_cost_model
from ..params import SearchParams
from ..recall_math import found_share
from .results import TuneResult
from .ranks import leaf_grid, record_ranks
from .solve import Unreachable, frontier_points, solve_for_cost, solve_for_recall

FIRST_DEPTH, FULL_DEPTH = 30, 100  # candidates ranked per wanted neighbour, at least MIN_DEPTH
MIN_DEPTH = 1000
MAX_FIT_QUERIES = 1000     # more sample queries barely move the estimates; they cost tuning time
MIN_FIT_QUERIES = 40
DATABASE_SAMPLE = 1000     # queries drawn from the database when no query log is given
EXACT_CHUNK_BYTES = 256 << 20  # float32 rows the exact ground truth packs at a time


# What the tuner reads of an index besides searching it: a QuantizedSearcher's view of its
# internals, which a sharded index (annlib.distributed) gives too.
TUNER_VIEW = ("leaf_order", "leaves_of", "leaf_slots", "ah_candidates", "stage_times", "ids", "vectors")


def tune(searcher, queries=None, *, target_recall: float | None = None, max_latency_us: float | None = None,
         k: int | None = None, ground_truth=None, database=None, holdout_fraction: float = 0.2,
         num_threads: int = 0, seed: int = 0, progress: bool | None = None, cost_model: dict | None = None,
         recall_tolerance: float = 0.0) -> TuneResult:
    """Chooses leaves_to_search and pre_reorder_num_neighbors for a quantized index (one, or
    sharded: anything with TUNER_VIEW).

    Exactly one of target_recall (the cheapest setting predicted to reach it) or
    max_latency_us (the best recall predicted within that single-query latency).
    queries: a sample of real queries [nq, d]; without them, `database` rows (or the
    index's own float32 reorder copy) are sampled and searched for their nearest
    *other* points (the result says so). ground_truth: true neighbour ids [nq, >= k]
    of `queries`; computed with exact brute force over the database when omitted.
    A `holdout_fraction` of the queries is kept out of the fit and searched with the
    chosen settings: the measured recall and latency are reported beside the prediction.
    cost_model: the constants of an earlier result (TuneResult.cost_model) of the same
    index on the same machine: no stage is timed again, so tuning the same index for
    another target is faster and predicts with the same costs.
    recall_tolerance: 0 counts only the true top-k ids as found; a positive value also counts
    a returned point whose exact score is within it of the k-th true score (in the index's
    units: dot products, squared L2 distances), as ann-benchmarks' recall does with its
    1e-3, so that near-ties at the k-th place are not misses. It needs exact scores, so no
    ground_truth with it.
    """
    started = time.perf_counter()
    if not isinstance(searcher, QuantizedSearcher) and not all(callable(getattr(searcher, view, None))
                                                               for view in TUNER_VIEW):
        raise TypeError("tune() needs a quantized index (builder.tree(...).score_ah(...)); "
                        f"a {type(searcher).__name__} has no search knobs to tune")
    if searcher.config.tree is None:
        raise ValueError("tune() needs an index with a tree(): without leaves there is nothing to choose")
    if searcher.config.reorder is None:
        raise ValueError("tune() needs an index with reorder(): its recall model counts a true neighbour "
                         "among the re-ranked candidates as found")
    if (target_recall is None) == (max_latency_us is None):
        raise ValueError("give exactly one of target_recall or max_latency_us")
    if target_recall is not None and not (isinstance(target_recall, (int, float)) and 0 < target_recall <= 1):
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
    if max_latency_us is not None and not (isinstance(max_latency_us, (int, float)) and max_latency_us > 0):
        raise ValueError(f"max_latency_us must be > 0, got {max_latency_us!r}")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    if not (isinstance(recall_tolerance, (int, float)) and not isinstance(recall_tolerance, bool)
            and np.isfinite(recall_tolerance) and recall_tolerance >= 0):
        raise ValueError(f"recall_tolerance must be a finite number >= 0, got {recall_tolerance!r}")
    num_threads = check_num_threads(num_threads)
    k = check_k(searcher.config.num_neighbors if k is None else k, searcher.size(), "k")

    queries, truth, exclude, source = _queries_and_truth(searcher, queries, ground_truth, database, k, seed,
                                                         num_threads, float(recall_tolerance))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(queries))
    num_heldout = max(1, int(round(holdout_fraction * len(queries))))
    fit, heldout = order[num_heldout:][:MAX_FIT_QUERIES], order[:num_heldout]
    if len(fit) < MIN_FIT_QUERIES:
        raise ValueError(f"tune() needs at least {MIN_FIT_QUERIES} fitting queries after the {num_heldout} held out; "
                         f"got {len(queries)} queries in all")

    model = None
    if cost_model is not None:
        try:
            model = CostModel(**cost_model)
        except TypeError as exc:
            raise ValueError(f"cost_model must be a TuneResult.cost_model dict: {exc}") from None
    leaves = leaf_grid(searcher.num_leaves)
    # Ranks are recorded to a first depth that covers every setting worth running (re-ranking
    # 30 k candidates costs about what scanning every leaf does); only a target beyond it, or
    # a choice in its upper half, records again to the full depth.
    depths = [int(min(searcher.size(), max(MIN_DEPTH, depth * k))) for depth in (FIRST_DEPTH, FULL_DEPTH)]
    depths = sorted(set(depths))
    bar = _progress(progress, len(leaves) + (8 if model is None else 0))
    try:
        for max_reorder in depths:
            if max_reorder != depths[0] and bar is not None:
                bar.total += len(leaves)
                bar.refresh()
            table = record_ranks(searcher, queries[fit], truth[fit], max_reorder, leaves, num_threads, bar,
                                 None if exclude is None else exclude[fit], k=k)
            if model is None:
                model = measure_cost_model(searcher, queries[fit], k, table, bar)
            recall = table.recall()
            cost = model.predict(leaves[:, None], table.scanned_slots[:, None], np.arange(max_reorder + 1)[None, :])
            try:
                (g, r), explored, margin = _solve(table, recall, cost, k, target_recall, max_latency_us)
            except Unreachable as exc:
                if max_reorder == depths[-1]:
                    raise _out_of_reach(exc, leaves, k, target_recall, max_latency_us) from None
                continue
            if 2 * r <= max_reorder:
                break
    finally:
        if bar is not None:
            bar.close()
    params = SearchParams(int(leaves[g]), int(r), k)
    heldout_recall, heldout_latency = _validate(searcher, queries[heldout], truth[heldout], params,
                                                None if exclude is None else exclude[heldout])
    return TuneResult(params, target_recall, max_latency_us, float(recall[g, r]), float(cost[g, r]),
                      heldout_recall, heldout_latency, len(fit), len(heldout), source,
                      time.perf_counter() - started, model.as_dict(), frontier_points(explored, leaves), margin,
                      float(recall_tolerance))


def _solve(table, recall, cost, k, target_recall, max_latency_us):
    """((grid index, re-ranked), explored, margin) for the target; raises Unreachable."""
    if target_recall is None:
        return (*solve_for_cost(recall, cost, k, float(max_latency_us)), 0.0)
    (g, r), explored = solve_for_recall(recall, cost, k, float(target_recall))
    # The cheapest point that just meets the target on the sample tends to fall short on
    # new queries (it was picked because it looked good here): ask for one standard error
    # of the sample's recall estimate more, when that is reachable.
    per_query = table.per_query_recall(g, r)
    margin = float(per_query.std(ddof=1) / np.sqrt(len(per_query)))
    if target_recall + margin > recall[:, k:].max():
        return (g, r), explored, 0.0
    (g, r), explored = solve_for_recall(recall, cost, k, float(target_recall) + margin)
    return (g, r), explored, margin


def _out_of_reach(exc, leaves, k, target_recall, max_latency_us) -> ValueError:
    g, r, value = exc.args
    if target_recall is not None:
        return ValueError(f"target recall {target_recall} is out of reach for this index: the best predicted "
                          f"recall@{k} is {value:.4f} (leaves_to_search={leaves[g]}, "
                          f"pre_reorder_num_neighbors={r}); lower the target or rebuild with more "
                          f"leaves, more code blocks or SOAR")
    return ValueError(f"max latency {max_latency_us} us is out of reach: the fastest setting is predicted at "
                      f"{value:.1f} us per query (leaves_to_search={leaves[g]}, "
                      f"pre_reorder_num_neighbors={r})")


def _queries_and_truth(searcher, queries, ground_truth, database, k, seed, num_threads, tolerance: float = 0.0):
    """Validated (queries, true ids, ids to exclude per query or None, where the queries came
    from). The true ids are [nq, k]; with a tolerance [nq, k + _tolerance_extra(k)]: the top
    k, then the next points whose exact score is within `tolerance` of the k-th, -1 beyond
    them (found_share counts any of them, k at most per query)."""
    wider = k + (_tolerance_extra(k) if tolerance > 0 else 0)
    if queries is None:
        ids, rows = _database(searcher, database)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(rows), size=min(DATABASE_SAMPLE, len(rows)), replace=False)
        queries = np.ascontiguousarray(rows[pick], dtype=np.float32)
        if ground_truth is not None:
            raise ValueError("ground_truth belongs to given queries; without queries the tuner computes it")
        positions, scores = _exact(searcher, rows, queries, min(wider + 1, len(rows)), num_threads)
        nearest = ids[positions]
        # A database row's nearest point is itself: drop it (or the last, should ties hide it).
        own = ids[pick]
        keep = nearest != own[:, None]
        keep[keep.all(axis=1), -1] = False
        truth = nearest[keep].reshape(len(nearest), -1)
        scores = scores[keep].reshape(len(nearest), -1)
        return queries, _within(truth, scores, k, tolerance), own, "database sample (no query log)"
    queries = as_float_matrix(queries, "queries", dim=searcher.dim)
    if ground_truth is None:
        ids, rows = _database(searcher, database)
        positions, scores = _exact(searcher, rows, queries, min(wider, len(rows)), num_threads)
        truth = _within(ids[positions], scores, k, tolerance)
    else:
        if tolerance > 0:
            raise ValueError("recall_tolerance compares exact scores, which ground_truth does not give: pass "
                             "database= (or an index with a float32 reorder copy) and no ground_truth")
        truth = np.asarray(ground_truth)
        if truth.ndim != 2 or truth.shape[0] != len(queries) or truth.shape[1] < k:
            raise ValueError(f"ground_truth must have shape ({len(queries)}, >= {k}), got {truth.shape}")
        if not np.issubdtype(truth.dtype, np.integer):
            raise TypeError(f"ground_truth must hold integer ids, got {truth.dtype}")
        truth = truth[:, :k].astype(np.int64)
        if not searcher.contains(np.unique(truth)).all():
            raise ValueError("ground_truth holds ids the index does not hold")
    return queries, truth, None, "given queries"


def _tolerance_extra(k: int) -> int:
    """Points beyond the k-th read for ties within a tolerance: a query with more of them
    counts only these (its recall estimate can only come out low)."""
    return k + 16


def _within(truth, scores, k: int, tolerance: float):
    """The top k ids, and beyond them those whose score is within `tolerance` of the k-th
    (-1 elsewhere); [nq, k] when the tolerance is 0."""
    if tolerance <= 0:
        return truth[:, :k]
    near = np.abs(scores - scores[:, k - 1:k]) <= tolerance
    near[:, :k] = True
    return np.where(near & (truth >= 0), truth, -1)


def _database(searcher, database):
    """(ids, their vectors as rows): database= is the vectors of ids 0..n-1; without it the
    index's float32 reorder copy."""
    if database is not None:
        rows = as_float_matrix(database, "database", dim=searcher.dim)
        if len(rows) != searcher.size():
            raise ValueError(f"database has {len(rows)} rows but the index holds {searcher.size()} points")
        ids = np.arange(len(rows), dtype=np.int64)
        if not searcher.contains(ids).all():
            raise ValueError("database= gives the vectors of ids 0..n-1, but the index holds other ids; "
                             "pass ground_truth= instead")
        return ids, rows
    reorder = searcher.config.reorder
    if reorder is not None and reorder.dtype == "float32":
        ids = searcher.ids()
        return ids, searcher.vectors(ids)
    raise ValueError("exact ground truth needs the original vectors: pass database= (the index keeps only "
                     "a compressed copy) or ground_truth=")


def _exact(searcher, rows, queries, k, num_threads):
    """(positions in rows, scores) of each query's exact k nearest, best first (ties: the
    smaller position). An exact brute-force search of one chunk of rows at a time, the
    chunks' answers merged: its packed copy of the rows is a chunk's, not the data's."""
    chunk = max(1024, EXACT_CHUNK_BYTES // (4 * rows.shape[1]) // 1024 * 1024)  # whole panels
    smaller_is_better = searcher.distance_measure == "squared_l2"
    positions = scores = None
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        config = IndexConfig(num_neighbors=min(k, len(part)), distance_measure=searcher.distance_measure,
                             brute_force=BruteForceConfig())
        found, found_scores = BruteForceSearcher.build(config, part, num_threads).search_batched(
            queries, num_threads=num_threads)
        found = found + start
        if positions is None:
            positions, scores = found, found_scores
            continue
        positions, scores = np.concatenate([positions, found], 1), np.concatenate([scores, found_scores], 1)
        order = np.lexsort((positions, scores if smaller_is_better else -scores), axis=1)[:, :k]
        positions, scores = np.take_along_axis(positions, order, 1), np.take_along_axis(scores, order, 1)
    return positions, scores


def neighbours_but_own(searcher, queries, own, k: int, **knobs) -> list:
    """The k neighbours of each query (a database row) other than its own id `own`: k + 1
    searched, with the other search knobs as given."""
    wider = searcher.search_batched(queries, final_num_neighbors=min(k + 1, searcher.size()), **knobs)[0]
    return [row[row != point][:k] for row, point in zip(wider, own)]


def _validate(searcher, queries, truth, params, exclude=None):
    """(recall, mean single-query latency in us) of params on the held-out queries; with
    `exclude` (database rows as queries) each query's own id is dropped from its results."""
    knobs = dict(final_num_neighbors=params.final_num_neighbors, leaves_to_search=params.leaves_to_search,
                 pre_reorder_num_neighbors=params.pre_reorder_num_neighbors)
    if exclude is None:
        ids = searcher.search_batched(queries, **knobs)[0]
    else:
        ids = neighbours_but_own(searcher, queries, exclude, params.final_num_neighbors,
                                 leaves_to_search=params.leaves_to_search,
                                 pre_reorder_num_neighbors=min(params.pre_reorder_num_neighbors + 1, searcher.size()))
    recall = found_share(ids, truth, params.final_num_neighbors)
    for q in queries[:10]:
        searcher.search(q, **knobs)
    start = time.perf_counter()
    for q in queries:
        searcher.search(q, **knobs)
    latency = (time.perf_counter() - start) / len(queries) * 1e6
    return recall, latency


def _progress(progress, total):
    if not wanted(progress):
        return None
    return progress_bar(total=total, progress=True, desc="tuning (ranks, then timings)", unit="step")
