"""Recall-QPS plots and the best-QPS table from the runner's JSON lines.

    python bench/plot.py bench-results/*.jsonl [--out bench-results] [--readme README.md]

For each dataset and mode (single query per call, batched) it draws one PNG:
recall@k on x, QPS on a log y axis, every measured point faint and each
algorithm's Pareto frontier (the best QPS at or above each recall) as a line.
It prints a Markdown table of the best QPS each algorithm reaches at recall
0.90 / 0.95 / 0.99, and with --readme replaces the text between the markers
`<!-- bench-table:begin -->` and `<!-- bench-table:end -->` with it.

When a file holds several runs, each (dataset, algorithm) is taken from its
latest run (a re-run of one algorithm replaces only that algorithm's curve);
--run-id picks one run instead.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

TARGETS = (0.90, 0.95, 0.99)
MODES = (("qps_single", "single", "one query per call, 1 thread"),
         ("qps_batched", "batched", "whole query set per call"))
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def read_records(paths) -> list:
    """Every record of every file, in file order; a malformed line is an error naming it."""
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number} is not JSON: {exc}") from exc
    return records


def select_points(records, run_id: str | None = None) -> dict:
    """{dataset: {algorithm: [point records]}}, each algorithm from its latest run (or run_id)."""
    points = [r for r in records if r.get("kind") == "point" and (run_id is None or r["run_id"] == run_id)]
    latest = {}
    for r in points:  # records are appended in time order, so the last run seen is the latest
        latest[(r["dataset"], r["algorithm"])] = r["run_id"]
    out = defaultdict(lambda: defaultdict(list))
    for r in points:
        if latest[(r["dataset"], r["algorithm"])] == r["run_id"]:
            out[r["dataset"]][r["algorithm"]].append(r)
    return out


def pareto_frontier(points, qps_key: str) -> list:
    """(recall, qps) points not beaten by any point with higher recall and higher QPS, by recall."""
    frontier = []
    for p in sorted(points, key=lambda p: (-p["recall"], -p[qps_key])):
        if not frontier or p[qps_key] > frontier[-1][1]:
            frontier.append((p["recall"], p[qps_key]))
    return frontier[::-1]


def best_qps(points, qps_key: str, target: float, recall_key: str = "recall"):
    """The fastest point with recall >= target (recall_key "recall_ids": the share of true ids), or None."""
    eligible = [p for p in points if p[recall_key] >= target]
    return max(eligible, key=lambda p: p[qps_key]) if eligible else None


def plot_dataset(dataset: str, by_algorithm: dict, out_dir: Path) -> list:
    """Writes one PNG per mode; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    any_point = next(iter(next(iter(by_algorithm.values()))))
    for qps_key, mode, description in MODES:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for algorithm, points in sorted(by_algorithm.items(), key=lambda item: _order(item[0])):
            color = f"C{_order(algorithm)[0] % 10}"  # one colour per algorithm in every plot
            ax.scatter([p["recall"] for p in points], [p[qps_key] for p in points], s=8, alpha=0.25, color=color)
            frontier = pareto_frontier(points, qps_key)
            ax.plot([r for r, _ in frontier], [q for _, q in frontier], marker="o", markersize=3, color=color,
                    label=algorithm)
        ax.set_yscale("log")
        # ann-benchmarks' recall axis: -log10(1 - recall) spreads 0.9 / 0.99 / 0.999 evenly
        # (recall 1.0 is drawn at 0.9999).
        ax.set_xscale("function", functions=(_recall_to_x, _x_to_recall))
        ax.set_xlabel(f"recall@{any_point['k']} (ann-benchmarks, distance threshold)")
        ax.set_ylabel("queries per second (log)")
        threads = "" if mode == "single" else f", {any_point['threads']} threads"
        ax.set_title(f"{dataset}: {mode} ({description}{threads})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        low = min(p["recall"] for points in by_algorithm.values() for p in points)
        ticks = [t for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999) if t >= min(low, 0.9)]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlim(max(0.5, min(low, 0.9)), 0.9999)
        fig.tight_layout()
        path = out_dir / f"{dataset}-{mode}.png"
        tmp = path.with_suffix(".png.tmp")
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        os.replace(tmp, path)  # a half-written plot never replaces a good one
        written.append(path)
    return written


def _recall_to_x(recall):
    import numpy as np

    return -np.log10(np.maximum(1.0 - np.asarray(recall, dtype=float), 1e-4))


def _x_to_recall(x):
    import numpy as np

    return 1.0 - 10.0 ** -np.asarray(x, dtype=float)


def markdown_table(selected: dict) -> str:
    """Best QPS at each recall target, per dataset, mode and algorithm; the fastest in bold."""
    lines = []
    for dataset in sorted(selected):
        by_algorithm = selected[dataset]
        algorithms = sorted(by_algorithm, key=_order)
        first = next(iter(by_algorithm.values()))[0]
        lines.append(f"**{dataset}** (n={first['n']:,}, d={first['d']}, {first['metric']}, k={first['k']}, "
                     f"{first['num_queries']:,} queries; batched on {first['threads']} threads)")
        lines.append("")
        lines.append("| mode | recall | " + " | ".join(algorithms) + " |")
        lines.append("|---|---|" + "---|" * len(algorithms))
        for qps_key, mode, _ in MODES:
            for target in TARGETS:
                best = {a: best_qps(by_algorithm[a], qps_key, target) for a in algorithms}
                top = max((p[qps_key] for p in best.values() if p), default=None)
                cells = []
                for a in algorithms:
                    p = best[a]
                    text = "-" if p is None else f"{p[qps_key]:,.0f}"
                    cells.append(f"**{text}**" if p is not None and p[qps_key] == top else text)
                lines.append(f"| {mode} | {target:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("| build | " + " | ".join(algorithms) + " |")
        lines.append("|---|" + "---|" * len(algorithms))
        lines.append("| build s (at the 0.95 single-query best) | " + " | ".join(
            _at95(by_algorithm[a], lambda p: f"{p['build_s']:.1f}") for a in algorithms) + " |")
        lines.append("| index MiB (same build) | " + " | ".join(
            _at95(by_algorithm[a], lambda p: f"{p['index_bytes'] / 2**20:.1f}") for a in algorithms) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _at95(points, fmt) -> str:
    p = best_qps(points, "qps_single", 0.95) or max(points, key=lambda p: p["recall"])
    return fmt(p)


def _order(algorithm: str):
    from .grids import ALL_LABELS

    return (ALL_LABELS.index(algorithm) if algorithm in ALL_LABELS else len(ALL_LABELS), algorithm)


def replace_in_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme} has no '{BEGIN}' ... '{END}' section to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = readme.with_suffix(readme.suffix + ".tmp")
    tmp.write_text(f"{head}{BEGIN}\n{table}{END}{tail}", encoding="utf-8")
    os.replace(tmp, readme)


def notes(records, selected) -> list:
    """Skipped or failed algorithms of the runs shown, as lines for the reader."""
    shown = {r["run_id"] for d in selected.values() for ps in d.values() for r in ps}
    return sorted({f"{r['dataset']}: {r['algorithm']} {r['kind']}: {r['reason']}" for r in records
                   if r.get("kind") in ("skipped", "failed") and r["run_id"] in shown})


def main_from_args(args) -> int:
    import sys

    try:
        records = read_records(args.results)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    selected = select_points(records, args.run_id)
    if not selected:
        print("error: no measured points in " + ", ".join(args.results), file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for dataset, by_algorithm in sorted(selected.items()):
        for path in plot_dataset(dataset, by_algorithm, out_dir):
            print(f"wrote {path}", file=sys.stderr)
    table = markdown_table(selected)
    extra = notes(records, selected)
    if extra:
        table += "\n" + "\n".join(f"- {line}" for line in extra) + "\n"
    print(table)
    if args.readme:
        try:
            replace_in_readme(Path(args.readme), table)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"updated {args.readme}", file=sys.stderr)
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="JSON lines files written by annlib bench")
    parser.add_argument("--out", default="bench-results", help="directory for the PNGs (default bench-results)")
    parser.add_argument("--readme", help="Markdown file whose bench-table section is replaced with the table")
    parser.add_argument("--run-id", help="plot only this run (default: each algorithm's latest run)")
