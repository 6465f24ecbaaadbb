"""The autotuner: rank tables, the optimizer, held-out recall, autopilot and the CLI."""
import json

import numpy as np
import pytest

import annlib
from annlib.cli import main as cli_main
from annlib.tuning.ranks import _positions, leaf_grid, record_ranks
from annlib.tuning.solve import Unreachable, solve_for_cost, solve_for_recall

from conftest import clustered, positions_per_leaf_count


@pytest.fixture(scope="module")
def data():
    """Clustered data hard enough that recall depends on both knobs."""
    rng = np.random.default_rng(11)
    x, q = clustered(rng, 24_000, 48, clusters=60, spread=0.6, nq=900)
    return x, q


@pytest.fixture(scope="module")
def index(data):
    x, _ = data
    return (annlib.builder(x, 10, "squared_l2").tree(240, 12).score_ah(2).reorder(100)
            .build(num_threads=2, progress=False))


@pytest.fixture(scope="module")
def soar_index(data):
    x, _ = data
    return (annlib.builder(x, 10, "dot_product").tree(240, 12, soar_lambda=1.5).score_ah(2).reorder(100)
            .build(num_threads=2, progress=False))


def exact_ids(x, q, k, measure):
    s = annlib.builder(x, k, measure).score_brute_force().build()
    return s.search_batched(q)[0]


def measured_recall(searcher, q, truth, params):
    ids = searcher.search_batched(q, final_num_neighbors=params.final_num_neighbors,
                                  leaves_to_search=params.leaves_to_search,
                                  pre_reorder_num_neighbors=params.pre_reorder_num_neighbors)[0]
    return np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(ids, truth)])


def test_positions_finds_ids_in_rows():
    candidates = np.array([[5, 3, 9, -1], [1, 2, 3, 4]])
    truth = np.array([[9, 7], [1, 4]])
    np.testing.assert_array_equal(_positions(candidates, truth, missing=4), [[2, 4], [0, 3]])
    # Ids too large for the table take the sorting path, with the same answers.
    big = np.int64(1) << 40
    np.testing.assert_array_equal(_positions(np.where(candidates >= 0, candidates + big, -1), truth + big, missing=4),
                                  [[2, 4], [0, 3]])


@pytest.mark.parametrize("offset", [0, 1 << 40])
def test_positions_agrees_with_a_plain_search(offset):
    rng = np.random.default_rng(11)
    nq, width, m, n = 40, 57, 9, 300
    candidates = np.stack([rng.permutation(n)[:width] for _ in range(nq)]).astype(np.int64) + offset
    candidates[rng.random((nq, width)) < 0.1] = -1            # padding here and there
    wanted = rng.integers(0, n, size=(nq, m)) + offset          # some present, some not, repeats too
    wanted[::7, 0] = -1                                         # no id: never found, padding or not
    expected = [[list(row).index(w) if w in row and w >= 0 else width for w in want]
                for row, want in zip(candidates, wanted)]
    np.testing.assert_array_equal(_positions(candidates, wanted, missing=width), expected)


@pytest.mark.parametrize("which", ["index", "soar_index"])
def test_rank_table_predicts_measured_recall_exactly(which, data, request):
    """recall(l, r) read from the table equals a real search's recall at that setting."""
    searcher = request.getfixturevalue(which)
    x, q = data
    q = q[:200]
    truth = exact_ids(x, q, 10, searcher.distance_measure)
    leaves = leaf_grid(searcher.num_leaves, 12)
    table = record_ranks(searcher, q, truth, 400, leaves)
    recall = table.recall()
    leaf_recall = table.leaf_recall()
    for g in (0, 4, 8):
        assert recall[g, 400] <= leaf_recall[g] + 1e-12
        for r in (10, 40, 200):
            params = annlib.SearchParams(int(leaves[g]), r, 10)
            assert recall[g, r] == pytest.approx(measured_recall(searcher, q, truth, params), abs=0.005)
    assert np.all(np.diff(recall, axis=1) >= 0)             # more candidates never lose a neighbour
    assert np.all(np.diff(table.scanned_slots) > 0)


def test_solver_meets_the_target_cheaply():
    # recall[g, r] rises with both knobs; cost too. The cheapest feasible point is known.
    g = np.arange(6)[:, None]
    r = np.arange(51)[None, :]
    recall = 1 - np.exp(-(g + 1) * 0.4) * np.exp(-r / 25)
    cost = 10 + 5.0 * g + 0.3 * r
    (gg, rr), explored = solve_for_recall(recall, cost, 5, 0.9)
    feasible = np.where((recall >= 0.9) & (r >= 5), cost, np.inf)
    assert recall[gg, rr] >= 0.9
    assert cost[gg, rr] == pytest.approx(feasible.min())
    assert explored
    (gg, rr), _ = solve_for_cost(recall, cost, 5, 30.0)
    affordable = np.where((cost <= 30.0) & (r >= 5), recall, -1)
    assert cost[gg, rr] <= 30.0 and recall[gg, rr] == pytest.approx(affordable.max())
    with pytest.raises(Unreachable):
        solve_for_recall(recall, cost, 5, 0.9999999)
    with pytest.raises(Unreachable):
        solve_for_cost(recall, cost, 5, 1.0)


@pytest.mark.parametrize("target", [0.85, 0.95])
def test_tuned_settings_meet_the_target_on_heldout_queries(index, data, target):
    x, q = data
    result = annlib.tune(index, q, target_recall=target, num_threads=2, progress=False)
    assert result.predicted_recall >= target
    assert result.heldout_recall >= target - 0.01
    assert result.num_heldout_queries == 180 and result.num_fit_queries == 720
    assert result.queries_source == "given queries"
    assert result.frontier and result.cost_model["per_slot_us"] >= 0
    # Measured independently on all the queries, with the chosen settings.
    truth = exact_ids(x, q, 10, "squared_l2")
    assert measured_recall(index, q, truth, result.params) >= target - 0.01



@pytest.mark.parametrize("target", [0.95, 0.999])
def test_deeper_ranks_are_recorded_only_when_the_first_depth_falls_short(index, data, target, monkeypatch):
    import importlib

    tune_module = importlib.import_module("annlib.tuning.tune")  # the module, not the function
    x, q = data
    full = annlib.tune(index, q, target_recall=target, num_threads=2, progress=False)
    # A first depth of 2 k candidates: 0.95 needs more than half of it, 0.999 more than all of
    # it, so each records again to the full depth and chooses what one full-depth pass does.
    monkeypatch.setattr(tune_module, "MIN_DEPTH", 0)
    monkeypatch.setattr(tune_module, "FIRST_DEPTH", 2)
    assert full.params.pre_reorder_num_neighbors > 10
    again = annlib.tune(index, q, target_recall=target, num_threads=2, progress=False, cost_model=full.cost_model)
    assert again.params == full.params and again.predicted_recall == full.predicted_recall
    # Where the first depth is ample, it is the only one.
    calls = []
    record = tune_module.record_ranks
    monkeypatch.setattr(tune_module, "record_ranks", lambda *a, **kw: calls.append(a[3]) or record(*a, **kw))
    monkeypatch.setattr(tune_module, "FIRST_DEPTH", 100)
    monkeypatch.setattr(tune_module, "FULL_DEPTH", 1000)
    deep = annlib.tune(index, q, target_recall=target, num_threads=2, progress=False, cost_model=full.cost_model)
    assert calls == [1000] and deep.params == full.params

def test_higher_targets_cost_more():
    # Wide clusters: both targets need tens of leaves, so the predicted costs differ by far
    # more than the fitted fixed cost varies between two tune() calls (on the shared data,
    # squared L2 reaches 0.97 at 5 leaves and the two costs were within 0.1 us).
    rng = np.random.default_rng(11)
    x, q = clustered(rng, 24_000, 48, clusters=60, spread=2.0, nq=900)
    index = annlib.builder(x, 10, "squared_l2").tree(240, 12).score_ah(2).reorder(100).build(progress=False)
    low = annlib.tune(index, q, target_recall=0.8, num_threads=2, progress=False)
    # One cost model for both (a second timing on a busy machine would fit other constants).
    high = annlib.tune(index, q, target_recall=0.97, num_threads=2, progress=False, cost_model=low.cost_model)
    assert high.predicted_cost_us > low.predicted_cost_us
    assert (high.params.leaves_to_search, high.params.pre_reorder_num_neighbors) != \
           (low.params.leaves_to_search, low.params.pre_reorder_num_neighbors)


def test_latency_target_and_database_sample(soar_index):
    fast = annlib.tune(soar_index, None, target_recall=0.9, num_threads=2, progress=False)
    assert fast.queries_source == "database sample (no query log)"
    assert fast.heldout_recall >= 0.89
    budget = fast.predicted_cost_us * 1.5
    # The same cost model (no second timing, which on a busy machine could fit other
    # constants): the budget then admits the first result, so the best recall within it
    # is at least as high. (Tuned on timings of its own, this failed on a busy machine.)
    result = annlib.tune(soar_index, None, max_latency_us=budget, num_threads=2, progress=False,
                         cost_model=fast.cost_model)
    assert result.cost_model == fast.cost_model
    assert result.predicted_cost_us <= budget
    assert result.predicted_recall >= fast.predicted_recall - 0.005


def test_impossible_targets_say_what_is_reachable(index, data):
    _, q = data
    # Neighbours the index cannot rank first: true ids replaced by far-away points for half the queries.
    x, _ = data
    truth = exact_ids(x, q, 10, "squared_l2")
    far = annlib.builder(-x, 10, "squared_l2").score_brute_force().build().search_batched(q[:450])[0]
    truth[:450] = far
    with pytest.raises(ValueError, match=r"out of reach.*best predicted recall@10 is 0\.[0-6]\d*"):
        annlib.tune(index, q, target_recall=0.95, ground_truth=truth, num_threads=2, progress=False)
    with pytest.raises(ValueError, match=r"max latency 0\.001 us is out of reach: the fastest setting"):
        annlib.tune(index, q, max_latency_us=0.001, num_threads=2, progress=False)



def test_within_and_found_share_count_near_ties():
    from annlib.recall_math import found_share
    from annlib.tuning.tune import _within

    ids = np.array([[4, 7, 9, 2, 5], [1, 3, 8, 6, 0]])
    scores = np.array([[0.9, 0.8, 0.7, 0.6999, 0.5], [5.0, 6.0, 7.0, 9.0, 12.0]])  # best first either way
    np.testing.assert_array_equal(_within(ids, scores, 3, 0.0), [[4, 7, 9], [1, 3, 8]])
    np.testing.assert_array_equal(_within(ids, scores, 3, 0.001), [[4, 7, 9, 2, -1], [1, 3, 8, -1, -1]])
    truth = _within(ids, scores, 3, 0.001)
    # The tie (2) stands in for the third neighbour; at most k count per query.
    assert found_share(np.array([[4, 7, 2], [1, 3, 6]]), truth, 3) == pytest.approx(5 / 6)
    assert found_share(np.array([[4, 7, 2], [1, 3, 8]]), truth[:, :3], 3) == pytest.approx(5 / 6)
    assert found_share(np.array([[-1, 9, 2], [8, 1, 3]]), truth, 3) == pytest.approx(5 / 6)


def test_recall_tolerance_counts_near_ties_as_found():
    from annlib.recall_math import found_share
    from annlib.tuning.tune import _exact, _within

    # Small integers: many points tie at the 10th distance, and which of them the exact top 10
    # holds is an id tie-break that the id-based recall then demands.
    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, size=(21_000, 12)).astype(np.float32)  # 21,000 rows: autopilot builds a tree
    q = rng.integers(0, 5, size=(500, 12)).astype(np.float32) + 0.25
    index = annlib.builder(x, 10, "squared_l2").tree(140, 8).score_ah(2).reorder(100).build(progress=False)
    strict = annlib.tune(index, q, target_recall=0.9, num_threads=2, progress=False)
    tolerant = annlib.tune(index, q, target_recall=0.9, num_threads=2, progress=False, recall_tolerance=1e-3,
                           cost_model=strict.cost_model)
    assert tolerant.recall_tolerance == 1e-3 and "near-ties within 0.001" in tolerant.summary()
    assert strict.recall_tolerance == 0 and "near-ties" not in strict.summary()
    assert tolerant.heldout_recall >= 0.89
    # Measured independently, with exact distances: a returned point counts when it is within
    # the tolerance of the 10th true distance.
    knobs = {"leaves_to_search": tolerant.params.leaves_to_search,
             "pre_reorder_num_neighbors": tolerant.params.pre_reorder_num_neighbors}
    ids, _ = index.search_batched(q, **knobs)
    true = np.sort(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1), axis=1)[:, 9]
    got = ((q[:, None, :] - x[ids]) ** 2).sum(-1)
    assert (got <= true[:, None] + 1e-3).mean() >= 0.89
    # The same results score higher when ties count (here many do).
    positions, scores = _exact(index, x, q, 10 + 26, 2)
    ties, top = _within(positions, scores, 10, 1e-3), positions[:, :10]
    assert (ties[:, 10:] >= 0).any()
    assert found_share(ids, ties, 10) > found_share(ids, top, 10)
    with pytest.raises(ValueError, match="recall_tolerance compares exact scores"):
        annlib.tune(index, q, target_recall=0.9, ground_truth=np.zeros((len(q), 10), dtype=np.int64),
                    recall_tolerance=1e-3, progress=False)
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="recall_tolerance must be"):
            annlib.tune(index, q, target_recall=0.9, recall_tolerance=bad, progress=False)
    # autopilot passes it on, and a database sample (no queries) counts ties the same way.
    auto = annlib.builder(x, 10, "squared_l2").autopilot(target_recall=0.9, recall_tolerance=1e-3).build(
        num_threads=2, progress=False)
    assert auto.tune_result.recall_tolerance == 1e-3 and auto.tune_result.heldout_recall >= 0.89


def test_bad_tune_arguments(index, data):
    x, q = data
    with pytest.raises(ValueError, match="exactly one"):
        annlib.tune(index, q, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        annlib.tune(index, q, target_recall=0.9, max_latency_us=100, progress=False)
    with pytest.raises(ValueError, match="target_recall"):
        annlib.tune(index, q, target_recall=1.5, progress=False)
    with pytest.raises(ValueError, match="shape"):
        annlib.tune(index, q, target_recall=0.9, ground_truth=np.zeros((3, 10), dtype=np.int64), progress=False)
    with pytest.raises(ValueError, match="at least"):
        annlib.tune(index, q[:20], target_recall=0.9, progress=False)
    with pytest.raises(ValueError, match="dimension"):
        annlib.tune(index, q[:, :10], target_recall=0.9, progress=False)
    brute = annlib.builder(x[:1000], 10, "squared_l2").score_brute_force().build()
    with pytest.raises(TypeError, match="quantized index"):
        annlib.tune(brute, q, target_recall=0.9, progress=False)
    int8 = annlib.builder(x[:5000], 10, "squared_l2").tree(50, 5).score_ah(2).reorder(50, dtype="int8").build(
        progress=False)
    with pytest.raises(ValueError, match="database="):
        annlib.tune(int8, q, target_recall=0.9, progress=False)
    no_reorder = annlib.builder(x[:5000], 10, "squared_l2").tree(50, 5).score_ah(2).build(progress=False)
    with pytest.raises(ValueError, match="reorder"):
        annlib.tune(no_reorder, q, target_recall=0.9, progress=False)


def test_set_default_params_survives_save_and_load(index, tmp_path, data):
    _, q = data
    params = annlib.SearchParams(30, 150, 5)
    index_copy = annlib.load(_saved(index, tmp_path / "a"))
    index_copy.set_default_params(params)
    ids, _ = index_copy.search_batched(q[:50])
    expected, _ = index_copy.search_batched(q[:50], final_num_neighbors=5, leaves_to_search=30,
                                            pre_reorder_num_neighbors=150)
    np.testing.assert_array_equal(ids, expected)
    index_copy.save(tmp_path / "b")
    again = annlib.load(tmp_path / "b")
    np.testing.assert_array_equal(again.search_batched(q[:50])[0], expected)
    with pytest.raises(ValueError, match="leaves_to_search"):
        again.set_default_params(annlib.SearchParams(10_000, 150, 5))
    with pytest.raises(TypeError, match="SearchParams"):
        again.set_default_params({"leaves_to_search": 3})
    x, _ = data
    flat = annlib.builder(x[:2000], 5, "squared_l2").score_ah(2).reorder(50).build(progress=False)
    with pytest.raises(ValueError, match="no tree"):
        flat.set_default_params(params)


def _saved(searcher, path):
    searcher.save(path)
    return path


def test_autopilot_builds_and_tunes(data):
    x, q = data
    searcher = annlib.builder(x, 10, "dot_product").autopilot(target_recall=0.9, queries=q).build(
        num_threads=2, progress=False)
    # SOAR by the data (soar_choice.py): on these Gaussian clusters spilling would scan 1.3x the points.
    assert searcher.config.tree.soar_lambda is None
    assert searcher.num_leaves == 400                      # 2 * (sqrt(24,000) rounded to 100)
    result = searcher.tune_result
    assert result.heldout_recall >= 0.89
    assert searcher.config.tree.num_leaves_to_search == result.params.leaves_to_search
    small = annlib.builder(x[:5000], 10, "squared_l2").autopilot(target_recall=0.9).build(progress=False)
    assert small.config.kind == "brute_force" and small.tune_result is None
    with pytest.raises(ValueError, match="autopilot"):
        annlib.builder(x, 10, "dot_product").tree(10, 2).autopilot(target_recall=0.9)
    with pytest.raises(ValueError, match="autopilot"):
        annlib.builder(x, 10, "dot_product").autopilot(target_recall=0.9).reorder(10)


def test_narrowest_copy_keeps_recall(rng):
    """autopilot(exact_scores=False) re-ranks from int8 (else bfloat16) only where the tuned
    settings lose at most MAX_RECALL_LOSS of recall that way: integer data int8 holds exactly
    gets int8 and the same neighbours; rows whose one huge value coarsens int8 and whose
    large common offset coarsens bfloat16 keep float32."""
    from annlib.tuning.autopilot import MAX_RECALL_LOSS, narrowest_copy

    exact_rows = rng.integers(0, 200, (6000, 16)).astype(np.float32)
    coarse_rows = (300 + 0.5 * rng.standard_normal((6000, 16))).astype(np.float32)
    coarse_rows[:, 0] = rng.choice([-60.0, 60.0], 6000)
    for x, want in ((exact_rows, "int8"), (coarse_rows, "float32")):
        searcher = (annlib.builder(x, 10, "squared_l2").tree(60, 6).score_ah(2).reorder(40)
                    .build(num_threads=2, progress=False))
        q = x[:300] + rng.standard_normal((300, 16)).astype(np.float32)
        truth = exact_ids(x, q, 10, "squared_l2")
        chosen = narrowest_copy(searcher, q, truth)
        assert chosen.config.reorder.dtype == want
        ids, _ = chosen.search_batched(q)
        float32_ids, _ = searcher.search_batched(q)
        hits = lambda found: np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth)]) / 10
        assert hits(ids) >= hits(float32_ids) - MAX_RECALL_LOSS
        if want == "int8":
            np.testing.assert_array_equal(ids, float32_ids)


def test_autopilot_may_narrow_the_reorder_copy(rng):
    """Also under custom ids, whose vectors the tuner reads back from the index (the builder's
    rows are not the vectors of ids 0..n-1 then)."""
    x = rng.integers(0, 200, (25_000, 16)).astype(np.float32)
    ids = np.arange(len(x)) * 7 + 3
    built = annlib.builder(x, 10, "squared_l2", ids=ids).autopilot(target_recall=0.9, exact_scores=False).build(
        num_threads=2, progress=False)
    assert built.config.reorder.dtype == "int8" and built.tune_result is not None
    assert built.config.tree.num_leaves_to_search == built.tune_result.params.leaves_to_search
    assert built.search(x[5])[0][0] == ids[5]
    with pytest.raises(TypeError, match="exact_scores"):
        annlib.builder(x, 10, "squared_l2").autopilot(target_recall=0.9, exact_scores=0)


def test_default_code_width_follows_k_and_the_leaves():
    """4 dims per block only where it measured faster: d >= 256, k-means leaves, small k."""
    from annlib import defaults

    assert defaults.dims_per_block_for(384) == 4
    assert defaults.dims_per_block_for(384, k=100) == 2
    assert defaults.dims_per_block_for(384, k=defaults.FOUR_DIMS_BELOW_K) == 2
    assert defaults.dims_per_block_for(384, spherical=True) == 2
    assert defaults.dims_per_block_for(128) == 2 and defaults.dims_per_block_for(258) == 2
    assert defaults.dims_per_block_for(385) == 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 384)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)

    def width(rows, k, measure):  # what autopilot would build for 100k such points
        config = defaults.configure(annlib.builder(rows, k, measure), measure, size=100_000).config()
        return config.score_ah.dimensions_per_block, config.tree.spherical

    assert width(x, 10, "squared_l2") == (4, False)
    assert width(x, 100, "squared_l2") == (2, False)   # the builder's k reaches the choice
    assert width(unit, 10, "dot_product") == (2, True)


def test_cli_round_trip_writes_params_that_load_applies(index, data, tmp_path, capsys):
    x, q = data
    path = _saved(index, tmp_path / "index")
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "gt.npy", exact_ids(x, q, 10, "squared_l2"))
    code = cli_main(["tune", "--index", str(path), "--queries", str(tmp_path / "q.npy"), "--ground-truth",
                     str(tmp_path / "gt.npy"), "--target-recall", "0.9", "--threads", "2", "--write"])
    out = capsys.readouterr().out
    assert code == 0
    assert "<- chosen" in out and "held-out" in out and "config.json" in out
    # One mechanism for tuned defaults (format 2): the index's own config.json.
    stored = json.loads((path / "config.json").read_text())
    chosen = [line for line in out.splitlines() if "<- chosen" in line][0].split()
    loaded = annlib.load(path)
    assert loaded.config.tree.num_leaves_to_search == stored["tree"]["num_leaves_to_search"] == int(chosen[0])
    assert loaded.config.reorder.pre_reorder_num_neighbors == stored["reorder"]["pre_reorder_num_neighbors"] \
        == int(chosen[1])
    assert not (path / "search_params.json").exists()
    assert cli_main(["tune", "--index", str(tmp_path / "nowhere"), "--target-recall", "0.9"]) == 2
    assert "no index at" in capsys.readouterr().err
    assert cli_main(["tune", "--index", str(path), "--queries", str(tmp_path / "q.txt"),
                     "--target-recall", "0.9"]) == 2
    assert ".npy or .hdf5" in capsys.readouterr().err
    # Near-ties counted: the ground truth is computed (with scores), so a file of ids is refused.
    assert cli_main(["tune", "--index", str(path), "--queries", str(tmp_path / "q.npy"), "--target-recall", "0.9",
                     "--threads", "2", "--recall-tolerance", "0.001"]) == 0
    assert "near-ties within 0.001" in capsys.readouterr().out
    assert cli_main(["tune", "--index", str(path), "--queries", str(tmp_path / "q.npy"), "--ground-truth",
                     str(tmp_path / "gt.npy"), "--target-recall", "0.9", "--recall-tolerance", "0.001"]) == 2
    assert "leave out --ground-truth" in capsys.readouterr().err


def test_tune_after_updates_with_custom_ids(data):
    """The tuner reads the index through its public view, in ids: custom ids and updates
    (which reorder the storage) are fine."""
    x, q = data
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7
    index = annlib.builder(x[:20_000], 10, "squared_l2", ids=ids[:20_000]).tree(100, 5).score_ah(2).reorder(
        100).build(progress=False)
    index.upsert(ids[20_000:], x[20_000:])
    index.delete(ids[:500])
    result = annlib.tune(index, q, target_recall=0.9, num_threads=2, progress=False)
    assert result.heldout_recall >= 0.88
    truth_rows = exact_ids(x[500:], q, 10, "squared_l2")
    got = index.search_batched(q, 10, result.params.pre_reorder_num_neighbors, result.params.leaves_to_search)[0]
    assert measured_recall_ids(got, ids[500:][truth_rows]) >= 0.88


def measured_recall_ids(got, truth):
    return float(np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(got, truth)]))


def test_public_view_of_the_internals(soar_index, data):
    index, (x, q) = soar_index, data
    order = index.leaf_order(q[:20])
    assert order.shape == (20, index.num_leaves) and (np.sort(order, axis=1) == np.arange(index.num_leaves)).all()
    first = index.search_batched(q[:20], 10, 10, 1)[0]  # one leaf: the best one
    held = index.leaves_of(first[first >= 0])
    assert np.all((held == order[:, :1].repeat(10, 1)[first >= 0][:, None]).any(axis=1))
    assert (held[:, 1] != held[:, 0]).any()  # SOAR: some points sit in a second leaf
    assert index.leaf_slots().sum() >= len(x) and index.leaf_slots().min() % 32 == 0
    cand, _ = index.ah_candidates(q[:5], 3, 50)
    assert cand.shape == (5, 50) and np.isin(cand[cand >= 0], index.ids()).all()
    np.testing.assert_array_equal(index.vectors([0, 5, 9]), x[[0, 5, 9]])


def _odd_wanted(truth, rng):
    """True ids plus repeats and an id the index does not hold."""
    nq = len(truth)
    repeats = truth[np.arange(nq)[:, None], rng.integers(0, truth.shape[1], (nq, 3))]
    return np.concatenate([truth, repeats, np.full((nq, 1), 10**12)], axis=1)


@pytest.mark.parametrize("which", ["index", "soar_index"])
def test_ah_ranks_equal_a_search_per_leaf_count(which, data, request, rng):
    """One pass over each query's leaves gives, at every leaf count of the grid, the
    positions a search of that many leaves (no reordering) gives."""
    searcher = request.getfixturevalue(which)
    x, q = data
    q = q[:150]
    wanted = _odd_wanted(exact_ids(x, q, 10, searcher.distance_measure), rng)
    leaves = leaf_grid(searcher.num_leaves, 12)
    for count in (10, 300):
        got = searcher.ah_ranks(q, leaves, count, wanted, num_threads=2)
        assert got.shape == (len(leaves), len(q), wanted.shape[1]) and got.dtype == np.int32
        np.testing.assert_array_equal(got, positions_per_leaf_count(searcher, q, leaves, count, wanted))
    assert (got[-1, :, :10] < 300).mean() > 0.9   # most true neighbours are found at all leaves
    with_none = np.concatenate([wanted, np.full((len(q), 1), -1)], axis=1)
    none = searcher.ah_ranks(q, leaves, 300, with_none)
    np.testing.assert_array_equal(none[..., :-1], got)
    assert (none[..., -1] == 300).all()           # -1 is no id: never found, as _positions says
    np.testing.assert_array_equal(none, positions_per_leaf_count(searcher, q, leaves, 300, with_none))


@pytest.mark.parametrize("measure", ["dot_product", "squared_l2", "cosine"])
def test_ah_ranks_where_screening_reorders_the_leaves(measure):
    """Leaves in near-ties for the query (every center at the same height along it): the
    int8 screening of the centers then chooses other leaves for a smaller count than the
    first ones of a larger count's choice, and those (query, count) pairs are scanned on
    their own. The positions still equal a search per leaf count."""
    rng = np.random.default_rng(5)
    d, clusters, per = 24, 120, 50
    u = rng.standard_normal((clusters, d))
    u[:, 0] = 0
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    centers = 0.5 * u
    centers[:, 0] = 1.0
    x = (np.repeat(centers, per, 0) + 0.01 * rng.standard_normal((clusters * per, d))).astype(np.float32)
    q = np.zeros((60, d), np.float32)
    q[:, 0] = 1.0
    q += 0.001 * rng.standard_normal(q.shape).astype(np.float32)
    searcher = annlib.builder(x, 10, measure).tree(clusters, 10).score_ah(2).reorder(50).build(
        num_threads=2, progress=False)
    leaves = leaf_grid(clusters, 12)
    most = searcher.choose_leaves(q, int(leaves[-1]))[0]
    reordered = sum(np.any(np.sort(searcher.choose_leaves(q, int(l))[0], 1) != np.sort(most[:, :l], 1), axis=1).sum()
                    for l in leaves)
    assert reordered > 20   # the case this test is about does occur
    truth = searcher.search_batched(q, 10, 200, clusters)[0]
    wanted = _odd_wanted(truth, rng)
    np.testing.assert_array_equal(searcher.ah_ranks(q, leaves, 100, wanted),
                                  positions_per_leaf_count(searcher, q, leaves, 100, wanted))


def test_ah_ranks_after_updates_with_custom_ids(data, rng):
    x, q = data
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7
    index = annlib.builder(x[:20_000], 10, "squared_l2", ids=ids[:20_000]).tree(100, 5, soar_lambda=1.5).score_ah(
        2).reorder(100).build(num_threads=2, progress=False)
    index.upsert(ids[20_000:], x[20_000:])
    index.delete(ids[:500])
    q = q[:100]
    truth = ids[500:][exact_ids(x[500:], q, 10, "squared_l2")]
    wanted = np.concatenate([_odd_wanted(truth, rng), ids[:4][None, :].repeat(len(q), 0)], axis=1)  # deleted ids
    leaves = leaf_grid(index.num_leaves, 10)
    got = index.ah_ranks(q, leaves, 200, wanted, num_threads=2)
    np.testing.assert_array_equal(got, positions_per_leaf_count(index, q, leaves, 200, wanted))
    assert (got[:, :, -4:] == 200).all()


def test_record_ranks_reads_the_same_table_either_way(soar_index, data):
    """record_ranks takes one pass where the searcher offers ah_ranks and a search per
    leaf count where it does not (a sharded index): the same table, database queries'
    own ids excluded too."""

    class SearchPerLeafCount:
        def __init__(self, searcher):
            self._searcher = searcher

        def __getattr__(self, name):
            if name == "ah_ranks":
                raise AttributeError(name)
            return getattr(self._searcher, name)

    x, q = data
    leaves = leaf_grid(soar_index.num_leaves, 12)
    rows = np.arange(0, 3000, 20)
    own = exact_ids(x, x[rows], 11, "dot_product")
    own = np.array([[i for i in found if i != row][:10] for found, row in zip(own, rows)])
    for queries, truth, exclude in ((q[:150], exact_ids(x, q[:150], 10, "dot_product"), None), (x[rows], own, rows)):
        one = record_ranks(soar_index, queries, truth, 300, leaves, 2, exclude=exclude)
        per = record_ranks(SearchPerLeafCount(soar_index), queries, truth, 300, leaves, 2, exclude=exclude)
        np.testing.assert_array_equal(one.ah_rank, per.ah_rank)
        np.testing.assert_array_equal(one.leaf_rank, per.leaf_rank)
        assert (one.ah_rank[-1] < 300).mean() > 0.8


def test_bad_ah_ranks_arguments(index, data):
    _, q = data
    q = q[:5]
    wanted = np.zeros((5, 3), np.int64)
    for grid in ([], [3, 3], [4, 2], [0, 5], [1, index.num_leaves + 1]):
        with pytest.raises(ValueError, match="leaves_grid"):
            index.ah_ranks(q, grid, 10, wanted)
    with pytest.raises(TypeError, match="integer"):
        index.ah_ranks(q, [1.0, 2.5], 10, wanted)
    for bad in (np.zeros((4, 3), np.int64), np.zeros((5, 0), np.int64), np.zeros(5, np.int64)):
        with pytest.raises(ValueError, match="wanted"):
            index.ah_ranks(q, [1, 2], 10, bad)
    for count in (0, -1, index.size() + 1):
        with pytest.raises(ValueError):
            index.ah_ranks(q, [1, 2], count, wanted)
    with pytest.raises(ValueError):
        index.ah_ranks(q[:, :5], [1, 2], 10, wanted)


def test_cost_fit_is_scipys_non_negative_least_squares():
    from scipy.optimize import nnls

    from annlib.tuning.cost import _nnls

    # The free fit of b = 3 - 2 l would have a negative slope: the best non-negative one is flat.
    a = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    np.testing.assert_allclose(_nnls(a, np.array([1.0, -1.0, -3.0])), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(_nnls(a, np.array([3.0, 1.0, 2.0])), [0.0, 2.0], atol=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(500):
        m, n = int(rng.integers(2, 10)), int(rng.integers(1, 4))
        a = rng.standard_normal((m, n)) * rng.choice([1.0, 50.0], size=n)
        b = rng.standard_normal(m) * 10
        x = _nnls(a, b)
        assert (x >= 0).all()
        assert np.linalg.norm(a @ x - b) <= np.linalg.norm(a @ nnls(a, b)[0] - b) + 1e-9


@pytest.mark.parametrize("measure", ["squared_l2", "dot_product", "cosine"])
def test_exact_ground_truth_in_chunks_equals_one_search(measure, monkeypatch):
    """The tuner's exact ground truth searches a chunk of rows at a time and merges: the
    same positions and scores as one exact search of every row, ties (integer data) and a
    last chunk smaller than k included."""
    import importlib

    tune_module = importlib.import_module("annlib.tuning.tune")
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (2 * 1024 + 7, 24)).astype(np.float32)
    q = np.concatenate([x[:50], rng.standard_normal((50, 24)).astype(np.float32)])
    searcher = annlib.builder(x, 10, measure).tree(8, 2).score_ah(2).reorder(20).build(progress=False)
    whole = tune_module._exact(searcher, x, q, 25, 2)
    monkeypatch.setattr(tune_module, "EXACT_CHUNK_BYTES", 4 * 24 * 1024)   # three chunks, the last of 7 rows
    chunked = tune_module._exact(searcher, x, q, 25, 2)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    ids, scores = annlib.builder(x, 25, measure).score_brute_force().build().search_batched(q)
    np.testing.assert_array_equal(chunked[0], ids)   # and what a user's exact search returns
