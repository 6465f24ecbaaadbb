"""Paired re-measurement of a finished run's summary cells.

The runner measures each build in its own process, one after another, so on a shared host
the cells of the summary table compare points timed tens of minutes apart. For each mode and
recall target this takes annlib's fastest point and the fastest peer's (as the table picks
them), builds both again in one process and times them in alternating rounds, the best of
each kept: drift then hits both alike, and the ratio is the paired one.
"""
from __future__ import annotations

import json
import sys
import time

from .plot import MODES, TARGETS, best_qps, read_records, select_points
from .runner import _best_seconds, dataset_name, load_dataset

OURS = ("annlib+soar", "annlib")


def cells(records, dataset: str, ours=OURS, peers=None, targets=TARGETS) -> list[dict]:
    """For each (mode, target): the fastest point of `ours` and of `peers` (default: every
    other algorithm but brute force) reaching the target in the latest run; cells where
    either side reaches nothing are left out."""
    by_algorithm = select_points(records).get(dataset, {})
    peers = peers or [a for a in by_algorithm if a not in ours and a != "bruteforce"]
    out = []
    for qps_key, mode, _ in MODES:
        for target in targets:
            sides = []
            for labels in (ours, peers):
                found = [best_qps(by_algorithm[a], qps_key, target) for a in labels if a in by_algorithm]
                found = [p for p in found if p is not None]
                sides.append(max(found, key=lambda p: p[qps_key]) if found else None)
            if all(sides):
                out.append({"mode": mode, "qps_key": qps_key, "target": target, "ours": sides[0], "peer": sides[1]})
    return out


def _build_key(point: dict) -> tuple:
    """Which build a point was measured on: its wrapper family and build arguments."""
    return point["family"], json.dumps(point["build"], sort_keys=True)


def fitted(builds: dict, point: dict, measure: str, threads: int, train):
    """The wrapper of a point's build, fitted once: `builds` keeps one per (family, build args)."""
    from .algorithms import FAMILIES

    key = _build_key(point)
    if key not in builds:
        print(f"building {point['name']}", file=sys.stderr, flush=True)
        wrapper = FAMILIES[point["family"]][0](measure, threads, **point["build"])
        wrapper.fit(train)
        builds[key] = wrapper
    return builds[key]


def timed_qps(wrapper, mode: str, queries, single, k: int) -> float:
    """One timing of a wrapper at its current query arguments: all `queries` in one call
    ("batched") or `single` one per call ("single"), repeated until half a second was timed."""
    if mode == "batched":
        return len(queries) / _best_seconds(lambda: wrapper.batch_query(queries, k), 1)

    def one_by_one():
        for q in single:
            wrapper.query(q, k)
    return len(single) / _best_seconds(one_by_one, 1)


def alternating_best(rounds: int, count: int, qps_of) -> dict:
    """{(cell, side): the best of `rounds` timings}: qps_of(cell, side) for cells 0..count-1
    and sides "ours" and "peer", the side that goes first alternating by round and cell, so
    neither always follows the other's cache state."""
    best = {}
    for r in range(rounds):
        for i in range(count):
            for side in (("ours", "peer") if (r + i) % 2 == 0 else ("peer", "ours")):
                best[(i, side)] = max(best.get((i, side), 0.0), qps_of(i, side))
        print(f"round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return best


def remeasure(dataset_path: str, chosen: list[dict], rounds: int) -> list[dict]:
    """Each cell with paired QPS for both of its points ('paired_ours', 'paired_peer')."""
    first = chosen[0]["ours"]
    k, threads = first["k"], first["threads"]
    _, _, measure, train, queries, _, _ = load_dataset(dataset_path, first["num_queries"], k)
    single = queries[:first["single_queries"]]
    builds = {}  # one fitted wrapper per (family, build args)
    for cell in chosen:
        for side in ("ours", "peer"):
            fitted(builds, cell[side], measure, threads, train)

    def qps_of(i, side):
        p = chosen[i][side]
        wrapper = fitted(builds, p, measure, threads, train)
        wrapper.set_query_arguments(**p["query"])
        return timed_qps(wrapper, chosen[i]["mode"], queries, single, k)

    best = alternating_best(rounds, len(chosen), qps_of)
    return [dict(cell, paired_ours=best[(i, "ours")], paired_peer=best[(i, "peer")]) for i, cell in enumerate(chosen)]


def report(results: list[dict]) -> str:
    """A Markdown table: each cell's points, the run's ratio and the paired one."""
    def point(p):
        knobs = " ".join(f"{key}={value}" for key, value in p["query"].items())
        return f"{p['algorithm']} {knobs} ({p['recall']:.4f})"

    lines = ["| mode | recall | annlib point | peer point | run: annlib / peer | paired: annlib / peer |",
             "|---|---|---|---|---|---|"]
    for c in results:
        run_ours, run_peer = c["ours"][c["qps_key"]], c["peer"][c["qps_key"]]
        lines.append(f"| {c['mode']} | {c['target']:.2f} | {point(c['ours'])} | {point(c['peer'])} | "
                     f"{run_ours:,.0f} / {run_peer:,.0f} = {run_ours / run_peer:.2f}x | "
                     f"{c['paired_ours']:,.0f} / {c['paired_peer']:,.0f} = "
                     f"{c['paired_ours'] / c['paired_peer']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="the HDF5 file the run measured")
    parser.add_argument("results", help="the run's JSON lines (bench/run.py --output)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating timed rounds (default 8)")
    parser.add_argument("--ours", default=",".join(OURS), help="annlib's labels (default: %(default)s)")
    parser.add_argument("--peers", help="the peers' labels (default: every other label but bruteforce)")
    parser.add_argument("--targets", default=",".join(str(t) for t in TARGETS), help="recall targets")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    name = dataset_name(args.dataset)
    chosen = cells(read_records([args.results]), name, args.ours.split(","),
                   args.peers.split(",") if args.peers else None,
                   [float(t) for t in args.targets.split(",")])
    if not chosen:
        print(f"error: no cell of {name} in {args.results} has both an annlib point and a peer's", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(report(remeasure(args.dataset, chosen, args.rounds)), end="")
    print(f"({args.rounds} rounds, {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

