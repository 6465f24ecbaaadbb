"""What a user gets from autopilot(), against the best peer of a finished run.

The run's annlib columns are the fastest points of a grid that a benchmark sweeps; a user
asks `builder(...).autopilot(target_recall=t)` instead, and gets the build and the knobs
annlib chooses. For each recall target this builds exactly that call on the dataset's train
rows (no queries given: the tuner samples database rows, as a user's call without queries
does), measures its recall@k on the test queries, and times it against the run's fastest peer
point at that target, rebuilt here, in alternating rounds in one process (the modes of the
run: its single queries one per call on one thread, and all queries in one call on the run's
threads). A peer's point reaches the target; autopilot's result may fall a little short of
it or pass it, so the report gives both recalls.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .algorithms import Algorithm
from .paired import alternating_best, fitted, timed_qps
from .plot import MODES, TARGETS, best_qps, read_records, select_points
from .recall import id_recall, knn_recall, metric_distances
from .runner import dataset_name, load_dataset

OURS = ("annlib+soar", "annlib")


class Autopilot(Algorithm):
    """annlib as `builder(train, k, measure).autopilot(target_recall=..., exact_scores=...,
    recall_tolerance=...)` builds it; searched at the knobs it tuned. Build args: k,
    target_recall, exact_scores, recall_tolerance (default 0), query_log (queries it may tune
    on, as a user's logged traffic; default none: a database sample)."""

    def fit(self, train):
        import annlib

        a = self.build_args
        self.searcher = (annlib.builder(train, a["k"], self.measure)
                         .autopilot(target_recall=a["target_recall"], exact_scores=a["exact_scores"],
                                    recall_tolerance=a.get("recall_tolerance", 0.0), queries=a.get("query_log"))
                         .build(num_threads=self.threads, progress=False))

    def query(self, q, k):
        return self.searcher.search(q, final_num_neighbors=k)[0]

    def batch_query(self, queries, k):
        return self.searcher.search_batched(queries, final_num_neighbors=k, num_threads=self.threads)[0]


def best_peers(records, dataset: str, targets, ours=OURS, recall_key: str = "recall") -> dict:
    """{(mode, target): the fastest point of any peer (not annlib, not brute force) reaching
    the target in its latest run}. recall_key "recall_ids" reads the target as a share of the
    true ids (autopilot's recall) instead of the run's distance-based recall."""
    by_algorithm = select_points(records).get(dataset, {})
    peers = [a for a in by_algorithm if a not in ours and a != "bruteforce"]
    out = {}
    for qps_key, mode, _ in MODES:
        for target in targets:
            found = [p for p in (best_qps(by_algorithm[a], qps_key, target, recall_key) for a in peers)
                     if p is not None]
            if found:
                out[(mode, target)] = max(found, key=lambda p: p[qps_key])
    return out


def check(dataset_path: str, records, targets, rounds: int, exact_scores: bool, ours=OURS,
          recall_key: str = "recall", recall_tolerance: float = 0.0, query_log: int = 0):
    """One row per (mode, target): autopilot's choice, its recall and its paired QPS against the
    peer's. `ours`: the run's labels that are annlib's, not peers; recall_key: best_peers'.
    query_log: autopilot tunes on that many test queries, evenly spaced through them (test sets
    often run picture by picture or topic by topic), and its recall is measured on the others;
    the timings use the run's queries as they are."""
    peers = best_peers(records, dataset_name(dataset_path), targets, ours, recall_key)
    if not peers:
        raise ValueError(f"no peer point of {dataset_path} in the results")
    first = next(iter(peers.values()))
    k, threads = first["k"], first["threads"]
    _, metric, measure, train, queries, true_distances, true_ids = load_dataset(dataset_path, first["num_queries"], k)
    single = queries[:first["single_queries"]]
    if not 0 <= query_log <= len(queries) // 2:
        raise ValueError(f"--query-log takes 0 to {len(queries) // 2} queries (the others measure the recall)")
    logged = np.zeros(len(queries), dtype=bool)
    logged[np.linspace(0, len(queries) - 1, query_log).round().astype(int)] = True
    unseen = ~logged
    log = queries[logged] if query_log else None
    tuned, built_peers = {}, {}  # target -> autopilot's searcher and its figures
    for target in targets:
        print(f"autopilot(target_recall={target}) ...", file=sys.stderr, flush=True)
        wrapper = Autopilot(measure, threads, k=k, target_recall=target, exact_scores=exact_scores,
                            recall_tolerance=recall_tolerance, query_log=log)
        start = time.perf_counter()
        wrapper.fit(train)
        build_s = time.perf_counter() - start
        ids = np.asarray(wrapper.batch_query(queries[unseen], k))
        recall = knn_recall(true_distances[unseen], metric_distances(metric, queries[unseen], train, ids), k)
        tuned[target] = dict(wrapper=wrapper, recall=recall, recall_ids=id_recall(ids, true_ids[unseen], k),
                             build_s=build_s,
                             description=_describe(wrapper.searcher))
        print(f"  {tuned[target]['description']}: recall {recall:.4f} (ids {tuned[target]['recall_ids']:.4f}), "
              f"{build_s:.1f} s", file=sys.stderr, flush=True)
    for p in peers.values():
        fitted(built_peers, p, measure, threads, train)
    cells = [(mode, target) for _, mode, _ in MODES for target in targets if (mode, target) in peers]

    def qps_of(i, side):
        mode, target = cells[i]
        if side == "ours":
            wrapper = tuned[target]["wrapper"]
        else:
            p = peers[(mode, target)]
            wrapper = fitted(built_peers, p, measure, threads, train)
            wrapper.set_query_arguments(**p["query"])
        return timed_qps(wrapper, mode, queries, single, k)

    best = alternating_best(rounds, len(cells), qps_of)
    rows = []
    for i, (mode, target) in enumerate(cells):
        rows.append(dict(mode=mode, target=target, recall=tuned[target]["recall"],
                         recall_ids=tuned[target]["recall_ids"], build_s=tuned[target]["build_s"],
                         description=tuned[target]["description"], peer=peers[(mode, target)],
                         qps=best[(i, "ours")], peer_qps=best[(i, "peer")]))
    return rows


def _describe(searcher) -> str:
    """The build and knobs autopilot chose, in a few words."""
    c = searcher.config
    if c.tree is None:
        return "brute force"
    knobs = searcher.search_defaults
    soar = f"SOAR {c.tree.soar_lambda:g}" if c.tree.soar_lambda is not None else "no SOAR"
    leaves = "spherical" if c.tree.spherical else ("augmented" if c.tree.augment_norms else "k-means")
    return (f"{c.tree.num_leaves} {leaves} leaves, {soar}, {c.score_ah.dimensions_per_block} dims/block, "
            f"{c.reorder.dtype}: {knobs['leaves_to_search']} / {knobs['pre_reorder_num_neighbors']}")


def report(rows) -> str:
    """A Markdown table. Recall as the run measures it (ann-benchmarks': a point within the k-th
    true distance + 1e-3 counts) and, in brackets, the share of the true ids returned, which is
    the recall autopilot() tunes for."""
    lines = ["| mode | target | autopilot: build, leaves searched / re-ranked | recall (ids) | peer point | "
             "peer recall (ids) | QPS autopilot / peer |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        p = row["peer"]
        knobs = " ".join(f"{key}={value}" for key, value in p["query"].items())
        lines.append(f"| {row['mode']} | {row['target']:.2f} | {row['description']} | "
                     f"{row['recall']:.4f} ({row['recall_ids']:.4f}) | {p['algorithm']} {knobs} | "
                     f"{p['recall']:.4f} ({p['recall_ids']:.4f}) | "
                     f"{row['qps']:,.0f} / {row['peer_qps']:,.0f} = {row['qps'] / row['peer_qps']:.2f}x |")
    builds = sorted({(row["target"], row["build_s"]) for row in rows})
    lines.append("")
    lines.append("autopilot build + tuning s: " + ", ".join(f"{t:.2f}: {s:.1f}" for t, s in builds))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="the HDF5 file the run measured")
    parser.add_argument("results", nargs="+", help="the run's JSON lines (each peer's latest run is used)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds (default 5)")
    parser.add_argument("--targets", default=",".join(str(t) for t in TARGETS), help="recall targets")
    parser.add_argument("--peer-recall", choices=("distance", "ids"), default="distance",
                        help="which recall a peer point must reach: the run's (a point within the k-th true "
                             "distance + 1e-3 counts) or the share of true ids (what autopilot tunes for)")
    parser.add_argument("--recall-tolerance", type=float, default=0.0,
                        help="autopilot(recall_tolerance=...): near-ties at the k-th place count as found "
                             "(1e-3 on angular data is the run's own recall)")
    parser.add_argument("--query-log", type=int, default=0, metavar="N",
                        help="give autopilot N test queries, evenly spaced, to tune on (a user's query log) "
                             "and measure its recall on the others (default 0: it tunes on database rows)")
    parser.add_argument("--exact-scores", action="store_true",
                        help="autopilot(exact_scores=True): keep the float32 re-ranking copy")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    targets = [float(t) for t in args.targets.split(",")]
    start = time.perf_counter()
    try:
        rows = check(args.dataset, read_records(args.results), targets, args.rounds, args.exact_scores,
                     recall_key="recall_ids" if args.peer_recall == "ids" else "recall",
                     recall_tolerance=args.recall_tolerance, query_log=args.query_log)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(rows), end="")
    print(f"({args.rounds} rounds, {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
