"""The benchmark suite: ann-benchmarks recall, the runner's JSON lines, plots and the table."""
import json

import numpy as np
import pytest

import annlib
from annlib.benchmarks import grids, plot, refine, runner
from annlib.benchmarks.recall import id_recall, knn_recall, metric_distances
from annlib.cli import main as cli_main
from annlib.datasets import ground_truth, write_hdf5

from conftest import clustered


# ----------------------------------------------------------------- recall

def test_knn_recall_counts_points_tied_with_the_kth_neighbour():
    # Query at the origin; points 1, 2 and 3 are all at distance 1 (a three-way tie at k=2).
    train = np.array([[0.5, 0], [1, 0], [0, 1], [-1, 0], [3, 0]], dtype=np.float32)
    query = np.zeros((1, 2), dtype=np.float32)
    true_distances = np.array([[0.5, 1.0, 1.0, 1.0, 3.0]])
    returned = np.array([[0, 3]])  # point 3 is tied with the stored 2nd neighbour (point 1)
    run = metric_distances("euclidean", query, train, returned)
    np.testing.assert_allclose(run, [[0.5, 1.0]])
    assert knn_recall(true_distances, run, 2) == 1.0
    assert id_recall(returned, np.array([[0, 1]]), 2) == 0.5
    worse = metric_distances("euclidean", query, train, np.array([[0, 4]]))
    assert knn_recall(true_distances, worse, 2) == 0.5


def test_knn_recall_epsilon_and_padding():
    true_distances = np.array([[0.1, 0.2]])
    assert knn_recall(true_distances, np.array([[0.1, 0.2009]]), 2) == 1.0     # within 1e-3
    assert knn_recall(true_distances, np.array([[0.1, 0.2011]]), 2) == 0.5
    train = np.eye(3, dtype=np.float32)
    padded = metric_distances("angular", train[:1], train, np.array([[0, -1]]))
    assert padded[0, 0] == pytest.approx(0.0) and padded[0, 1] == np.inf


def test_angular_distance_ignores_norms():
    train = np.array([[2.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    query = np.array([[3.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(metric_distances("angular", query, train, np.array([[0, 1]])),
                               [[1 - np.sqrt(0.5)] * 2], rtol=1e-12)


def test_recall_rejects_unknown_metric_and_short_ground_truth():
    with pytest.raises(ValueError, match="hamming"):
        metric_distances("hamming", np.zeros((1, 2)), np.zeros((2, 2)), np.zeros((1, 1), dtype=int))
    with pytest.raises(ValueError, match="fewer than k"):
        knn_recall(np.zeros((1, 5)), np.zeros((1, 10)), 10)


# ----------------------------------------------------------------- grids

def test_grids_scale_with_the_dataset_and_share_the_sweep():
    assert grids.num_leaves_for(100_000) == 600 and grids.num_leaves_for(1_000_000) == 2000
    assert grids.num_leaves_for(1_000) == 50
    defs = grids.definitions(150_000, 128, "squared_l2", 10)
    labels = {d.label for d in defs}
    assert "scann+soar" not in labels  # ScaNN spills with dot product only
    partitioned = [d for d in defs if d.family in ("annlib", "scann")]
    ivf = next(d for d in defs if d.family == "faiss-ivfpqfs")
    for d in partitioned:
        assert d.build_args["num_leaves"] == ivf.build_args["nlist"] == 800
        assert [(q["leaves"], q["reorder"]) for q in d.query_args] == \
               [(q["nprobe"], q["reorder"]) for q in ivf.query_args]
    assert all(grids.Definition.from_json(d.to_json()) == d for d in defs)
    # Re-ranking depths from 1.5k, where both annlib and ScaNN are fastest on words at k=100.
    assert grids.reorder_sweep(100, quick=False) == [150, 200, 400, 1000, 2500]
    assert grids.reorder_sweep(7, quick=False)[0] == 10
    # On inner-product data ScaNN also gets spherical leaves (as annlib does on unit vectors).
    assert {d.build_args["spherical"] for d in defs if d.family == "scann"} == {False}
    scann_ip = [d for d in grids.definitions(100_000, 384, "dot_product", 10) if d.family == "scann"]
    assert {(d.label, d.build_args["spherical"]) for d in scann_ip} == \
           {(label, s) for label in ("scann", "scann+soar") for s in (False, True)}
    with pytest.raises(ValueError, match="unknown algorithm"):
        grids.definitions(1000, 8, "dot_product", 10, ["annoy"])


def test_grids_build_annlib_and_scann_once_per_reorder_dtype():
    plain = grids.definitions(100_000, 384, "dot_product", 100)
    every = grids.definitions(100_000, 384, "dot_product", 100, reorder_dtypes=("float32", "bfloat16", "int8"))
    for family in ("annlib", "scann"):
        ours = [d for d in plain if d.family == family]
        theirs = [d for d in every if d.family == family]
        assert len(theirs) == 3 * len(ours)
        # float32 builds are the default grid's, names unchanged (earlier results stay comparable)
        assert [d for d in theirs if "reorder_dtype" not in d.build_args] == ours
        for dtype in ("bfloat16", "int8"):
            typed = [d for d in theirs if d.build_args.get("reorder_dtype") == dtype]
            assert [{k: v for k, v in d.build_args.items() if k != "reorder_dtype"} for d in typed] == \
                   [d.build_args for d in ours]
            assert all(f"reorder_dtype={dtype}" in d.name for d in typed)
    others = [d for d in every if d.family not in ("annlib", "scann")]
    assert others == [d for d in plain if d.family not in ("annlib", "scann")]
    for bad in ((), ("float16",)):
        with pytest.raises(ValueError, match="reorder_dtypes"):
            grids.definitions(1000, 8, "dot_product", 10, reorder_dtypes=bad)


# ----------------------------------------------------------------- refinement near the targets

def point(recall, single, batched=None, **query):
    return {"query": query, "recall": recall, "qps_single": single,
            "qps_batched": single if batched is None else batched}


def test_refine_bisects_between_the_fastest_point_and_the_step_below_it():
    floors = {"reorder": 150}
    grid = [point(0.93, 900, leaves=30, reorder=200), point(0.96, 700, leaves=42, reorder=200),
            point(0.91, 800, leaves=30, reorder=150), point(0.955, 750, leaves=42, reorder=150)]
    # 0.90: fastest 30/200; no smaller leaf count measured: halfway to the floor (1), leaves 15;
    # its reorder's step below (30/150) reaches 0.90 too: nothing. 0.95: fastest 42/150 -> leaves
    # 36 (30/150 misses); its reorder is at the floor. 0.99: nothing reaches it.
    assert refine.proposals(grid, floors=floors) == [{"leaves": 15, "reorder": 200}, {"leaves": 36, "reorder": 150}]
    # The next round halves the remaining gaps on the side that missed.
    grid += [point(0.85, 950, leaves=15, reorder=200), point(0.945, 820, leaves=36, reorder=150)]
    assert refine.proposals(grid, floors=floors) == [{"leaves": 22, "reorder": 200}, {"leaves": 39, "reorder": 150}]
    # Single and batched fastest points differ: both are refined, each knob on its own.
    two = [point(0.92, 100, 900, leaves=10, reorder=400), point(0.97, 300, 400, leaves=20, reorder=400),
           point(0.80, 200, 200, leaves=10, reorder=100), point(0.85, 400, 300, leaves=20, reorder=100),
           point(0.91, 500, 100, leaves=40, reorder=100)]
    assert refine.proposals(two, targets=[0.9], floors={"reorder": 100}) == \
        [{"leaves": 30, "reorder": 100}, {"leaves": 5, "reorder": 400}, {"leaves": 10, "reorder": 250}]
    assert refine.floors_for(100) == {"reorder": 100, "ef": 100}


def test_refine_leaves_knobless_and_adjacent_settings_alone():
    assert refine.proposals([point(1.0, 10)]) == []                      # brute force: no knobs
    assert refine.proposals([point(0.5, 10, ef=10), point(0.95, 5, ef=11)]) == []   # no integer between
    assert refine.proposals([point(0.5, 10, ef=10), point(0.95, 5, ef=20)]) == [{"ef": 15}]
    # Only smaller settings with every other knob equal count as the step below: here each
    # knob of the fastest point has none, so each goes halfway to its floor, unless it is there.
    pair = [point(0.5, 10, leaves=10, reorder=100), point(0.95, 5, leaves=20, reorder=200)]
    assert refine.proposals(pair) == [{"leaves": 10, "reorder": 200}, {"leaves": 20, "reorder": 100}]
    assert refine.proposals(pair, floors={"leaves": 20, "reorder": 200}) == []
    assert refine.proposals([point(0.95, 5, leaves=2)]) == [{"leaves": 1}]     # the floor itself is asked
    assert refine.proposals([point(0.95, 5, leaves=1)]) == []
    assert refine.proposals([point(0.95, 5, exact=True), point(0.5, 9, exact=False)]) == []  # bools are no steps


# ----------------------------------------------------------------- runner and plots

@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("bench-data")
    paths = {}
    for metric, measure in (("euclidean", "squared_l2"), ("angular", "cosine")):
        train, test = clustered(rng, 4000, 16, clusters=40, nq=60)
        ids, _ = ground_truth(train, test, 20, measure)
        distances = metric_distances(metric, test, train, ids)
        paths[metric] = root / f"tiny-{metric}.hdf5"
        write_hdf5(paths[metric], train, test, ids, distances, metric)
    return paths


@pytest.fixture(scope="module")
def results_file(tiny_datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-results") / "results.jsonl"
    for metric in ("euclidean", "angular"):
        runner.run(str(tiny_datasets[metric]), algorithms=["annlib+soar", "bruteforce", "scann+soar"], k=10,
                   threads=2, single_queries=20, runs=1, output=str(out), quick=True)
    return out


def records_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_runner_writes_one_record_per_query_setting(results_file):
    records = records_of(results_file)
    points = [r for r in records if r["kind"] == "point"]
    for dataset in ("tiny-euclidean", "tiny-angular"):
        mine = [r for r in points if r["dataset"] == dataset]
        brute = [r for r in mine if r["algorithm"] == "bruteforce"]
        assert len(brute) == 1 and brute[0]["recall"] == 1.0 and brute[0]["recall_ids"] == 1.0
        soar = [r for r in mine if r["algorithm"] == "annlib+soar"]
        expected = grids.definitions(4000, 16, "dot_product", 10, ["annlib+soar"], quick=True)[0].query_args
        assert [r["query"] for r in soar] == expected
        assert max(r["recall"] for r in soar) >= 0.95
        for r in soar:
            assert 0.0 <= r["recall"] <= 1.0 and r["qps_single"] > 0 and r["qps_batched"] > 0
            assert r["build_s"] > 0 and r["index_bytes"] > 0
            assert r["k"] == 10 and r["threads"] == 2 and r["num_queries"] == 60 and r["single_queries"] == 20
            assert r["build"]["soar_lambda"] == grids.SOAR_LAMBDA
    # ScaNN's SOAR is dot-product only: noted for the euclidean data, never silently missing.
    notes = [r for r in records if r["kind"] in ("skipped", "failed")]
    assert any(r["dataset"] == "tiny-euclidean" and r["algorithm"] == "scann+soar" and "dot product" in r["reason"]
               for r in notes)
    angular_scann = [r for r in records if r["dataset"] == "tiny-angular" and r["algorithm"] == "scann+soar"]
    assert angular_scann  # measured when scann is installed, else a 'not installed' note
    assert all(r["kind"] == "point" or "not installed" in r["reason"] for r in angular_scann)


def test_runner_refines_near_the_targets_after_the_grid(tiny_datasets, tmp_path):
    out = tmp_path / "refined.jsonl"
    runner.run(str(tiny_datasets["angular"]), algorithms=["annlib+soar"], k=10, threads=2, single_queries=20,
               runs=1, output=str(out), quick=True, refine_rounds=2)
    points = [r for r in records_of(out) if r["kind"] == "point"]
    grid = [r for r in points if r["refined"] == 0]
    assert [r["query"] for r in grid] == grids.definitions(4000, 16, "dot_product", 10, ["annlib+soar"],
                                                           quick=True)[0].query_args
    extra = [r for r in points if r["refined"] > 0]
    assert extra, "the quick grid's steps leave gaps at recall 0.90-0.99 on this data"
    # Each extra point is what refine.proposals asked for, given the points before its round.
    for round_ in (1, 2):
        before = [r for r in points if r["refined"] < round_]
        asked = [r["query"] for r in points if r["refined"] == round_]
        assert asked == refine.proposals(before, floors=refine.floors_for(10)) and (round_ == 2 or asked)
    with pytest.raises(ValueError, match="refine_rounds"):
        runner.run(str(tiny_datasets["angular"]), algorithms=["bruteforce"], output=str(out), refine_rounds=-1)


def test_rerun_appends_and_plots_take_the_latest_run(results_file, tiny_datasets, tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text(results_file.read_text())
    before = len(records_of(out))
    runner.run(str(tiny_datasets["euclidean"]), algorithms=["bruteforce"], threads=1, single_queries=5, runs=1,
               output=str(out))
    records = records_of(out)
    assert len(records) == before + 1
    selected = plot.select_points(records)
    [latest] = selected["tiny-euclidean"]["bruteforce"]
    assert latest["run_id"] == records[-1]["run_id"]
    assert len(selected["tiny-euclidean"]["annlib+soar"]) > 1  # untouched algorithms keep their run


def test_pareto_frontier_keeps_only_unbeaten_points():
    points = [{"recall": r, "q": q} for r, q in [(0.8, 100), (0.85, 90), (0.9, 95), (0.95, 50), (0.97, 60),
                                                   (0.99, 10)]]
    assert plot.pareto_frontier(points, "q") == [(0.8, 100), (0.9, 95), (0.97, 60), (0.99, 10)]
    assert plot.best_qps(points, "q", 0.9)["q"] == 95
    assert plot.best_qps(points, "q", 0.995) is None


def test_plot_writes_pngs_table_and_readme_section(results_file, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n{plot.BEGIN}\nold table\n{plot.END}\nafter\n")
    code = cli_main(["bench-plot", str(results_file), "--out", str(tmp_path / "plots"), "--readme", str(readme)])
    assert code == 0
    for dataset in ("tiny-euclidean", "tiny-angular"):
        for mode in ("single", "batched"):
            png = tmp_path / "plots" / f"{dataset}-{mode}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| mode | recall | annlib+soar |" in table and "| single | 0.90 |" in table
    assert "scann+soar skipped" in table
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nintro\n") and text.endswith(f"{plot.END}\nafter\n")
    assert table.strip() in text


def test_plot_and_bench_errors_are_clear(tmp_path, capsys, tiny_datasets):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "point"}\nnot json\n')
    assert cli_main(["bench-plot", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert cli_main(["bench", str(tiny_datasets["euclidean"]), "--algorithms", "annoy"]) == 2
    assert "unknown algorithm" in capsys.readouterr().err
    assert cli_main(["bench", str(tmp_path / "missing.hdf5")]) == 2
    assert "neither a file nor a dataset name" in capsys.readouterr().err
    with pytest.raises(ValueError, match="bench-table"):
        plot.replace_in_readme(readme, "table\n")
    assert readme.read_text() == "no markers\n"


# ----------------------------------------------------------------- paired re-measurement

def test_paired_remeasures_the_summary_cells(tiny_datasets, tmp_path, capsys):
    from annlib.benchmarks import paired

    out = tmp_path / "pair.jsonl"
    runner.run(str(tiny_datasets["angular"]), algorithms=["annlib+soar", "annlib", "bruteforce"], k=10,
               threads=2, single_queries=20, runs=1, output=str(out), quick=True)
    records = records_of(out)
    chosen = paired.cells(records, "tiny-angular", ours=["annlib+soar"], peers=["annlib"], targets=[0.9])
    assert [c["mode"] for c in chosen] == ["single", "batched"]
    for c in chosen:  # the table's picks: the fastest point of each side at the target
        assert c["ours"]["algorithm"] == "annlib+soar" and c["peer"]["algorithm"] == "annlib"
        for side, label in (("ours", "annlib+soar"), ("peer", "annlib")):
            eligible = [r for r in records if r.get("algorithm") == label and r["recall"] >= 0.9]
            assert c[side][c["qps_key"]] == max(r[c["qps_key"]] for r in eligible)
    results = paired.remeasure(str(tiny_datasets["angular"]), chosen, rounds=2)
    assert all(r["paired_ours"] > 0 and r["paired_peer"] > 0 for r in results)
    table = paired.report(results)
    assert table.count("\n") == 4 and "| single | 0.90 | annlib+soar" in table
    # Peers by default: every label but annlib's and brute force's (none in this run).
    assert paired.cells(records, "tiny-angular") == []
    # The command line; a run without the peers asked for is an error.
    assert paired.main([str(tiny_datasets["angular"]), str(out), "--rounds", "1", "--targets", "0.9",
                        "--ours", "annlib+soar", "--peers", "annlib"]) == 0
    assert "| batched | 0.90 |" in capsys.readouterr().out
    assert paired.main([str(tiny_datasets["angular"]), str(out), "--peers", "scann"]) == 2
    assert "no cell" in capsys.readouterr().err


# ----------------------------------------------------------------- same settings, both systems

def test_same_settings_times_both_systems_at_the_same_knobs(tiny_datasets):
    from pathlib import Path

    from annlib.benchmarks.algorithms import missing_module
    from conftest import run_python

    script = Path(__file__).resolve().parents[1] / "bench" / "same_settings.py"
    args = [str(script), str(tiny_datasets["angular"]), "-k", "10", "--num-leaves", "40", "--rounds", "1",
            "--single-queries", "20", "--points", "2/20,8/40"]
    out = run_python(*args, capture_output=True, text=True, timeout=300)
    if missing_module("scann"):  # CI installs no peers: the script says what to install
        assert out.returncode == 2 and 'pip install "annlib[bench]"' in out.stderr
        return
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| 2 /") or
            line.startswith("| 8 /")]
    assert len(rows) == 2
    for row in rows:
        recall_ours, recall_scann = float(row[1]), float(row[2])
        assert 0 < recall_ours <= 1 and 0 < recall_scann <= 1
        ours, theirs = (float(v.replace(",", "")) for v in row[3:5])
        assert ours > 0 and theirs > 0 and row[5].strip(" |").endswith("x")
    bad = run_python(*args[:2], "--points", "3", capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "leaves/reorder" in bad.stderr


# ----------------------------------------------------------------- autopilot against the peers

def test_autopilot_check_times_what_a_user_gets_against_the_best_peer(tiny_datasets, tmp_path, capsys):
    from annlib.benchmarks import autopilot_check

    out = tmp_path / "run.jsonl"
    runner.run(str(tiny_datasets["euclidean"]), algorithms=["annlib", "bruteforce"], k=10,
               threads=2, single_queries=20, runs=1, output=str(out), quick=True)
    records = records_of(out)
    # Here plain annlib plays the peer; brute force is never one.
    peers = autopilot_check.best_peers(records, "tiny-euclidean", [0.9], ours=("annlib+soar",))
    assert set(peers) == {("single", 0.9), ("batched", 0.9)}
    for (mode, _), point in peers.items():
        eligible = [r for r in records if r.get("algorithm") == "annlib" and r["recall"] >= 0.9]
        assert point[f"qps_{mode}"] == max(r[f"qps_{mode}"] for r in eligible)
    assert autopilot_check.best_peers(records, "tiny-euclidean", [0.9]) == {}
    by_ids = autopilot_check.best_peers(records, "tiny-euclidean", [0.9], ours=("annlib+soar",),
                                        recall_key="recall_ids")
    for (mode, _), point in by_ids.items():
        eligible = [r for r in records if r.get("algorithm") == "annlib" and r["recall_ids"] >= 0.9]
        assert point[f"qps_{mode}"] == max(r[f"qps_{mode}"] for r in eligible)
    rows = autopilot_check.check(str(tiny_datasets["euclidean"]), records, [0.9], rounds=1, exact_scores=False,
                                 ours=("annlib+soar",))
    assert [(r["mode"], r["target"]) for r in rows] == [("single", 0.9), ("batched", 0.9)]
    for r in rows:
        assert r["description"] == "brute force"  # autopilot's choice below 20,000 points
        assert r["recall"] == 1.0 and r["qps"] > 0 and r["peer_qps"] > 0
    table = autopilot_check.report(rows)
    assert "| single | 0.90 | brute force | 1.0000 (1.0000) | annlib " in table
    # Tuned on a query log (here brute force all the same), measured on the queries it did not see.
    logged = autopilot_check.check(str(tiny_datasets["euclidean"]), records, [0.9], rounds=1, exact_scores=False,
                                   ours=("annlib+soar",), query_log=20)
    assert logged[0]["recall"] == 1.0
    with pytest.raises(ValueError, match="query-log takes 0 to 30"):
        autopilot_check.check(str(tiny_datasets["euclidean"]), records, [0.9], rounds=1, exact_scores=False,
                              ours=("annlib+soar",), query_log=31)
    # The command line: annlib's own labels are never peers, so this run has none.
    assert autopilot_check.main([str(tiny_datasets["euclidean"]), str(out), "--rounds", "1"]) == 2
    assert "no peer point" in capsys.readouterr().err


def test_autopilot_check_describes_a_tuned_quantized_index():
    from annlib.benchmarks.autopilot_check import _describe

    rng = np.random.default_rng(3)
    data = rng.standard_normal((3000, 16)).astype(np.float32)
    searcher = (annlib.builder(data, 10, "squared_l2").tree(40, 4, soar_lambda=1.5).score_ah(2)
                .reorder(30, dtype="int8").build(progress=False))
    searcher.set_default_params(annlib.SearchParams(7, 55, 10))
    assert _describe(searcher) == "40 k-means leaves, SOAR 1.5, 2 dims/block, int8: 7 / 55"


# ----------------------------------------------------------------- the autotuner against a grid

def test_bench_tune_compares_tuned_settings_with_the_grid_on_the_default_build(tmp_path):
    from pathlib import Path

    from conftest import run_python

    rng = np.random.default_rng(3)
    train, test = clustered(rng, 20_500, 16, clusters=60, nq=120)  # above the brute-force size
    ids, _ = ground_truth(train, test, 20, "squared_l2")
    path = tmp_path / "small-euclidean.hdf5"
    write_hdf5(path, train, test, ids, metric_distances("euclidean", test, train, ids), "euclidean")
    script = Path(__file__).resolve().parents[1] / "bench" / "bench_tune.py"
    out = run_python(str(script), str(path), "--defaults", "-k", "20", capture_output=True, text=True,
                     timeout=600)
    assert out.returncode == 0, out.stderr
    assert "leaves (spherical False)" in out.stderr  # the defaults' build, described
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| 0.9")]
    assert [row[0] for row in rows] == ["| 0.90", "| 0.95", "| 0.99"]
    for row in rows:
        target = float(row[0].strip("| "))
        leaves, reorder = (int(v) for v in row[2].split(" / "))
        assert leaves >= 1 and reorder >= 20  # never below k
        assert float(row[5]) >= target - 0.1  # 60 unseen queries: a loose bound
        if row[7].strip() != "- (not reached)":
            assert float(row[8].strip(" |")) > 0
    assert "ScaNN autopilot formula" in out.stdout
