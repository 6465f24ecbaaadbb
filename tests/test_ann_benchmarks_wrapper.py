"""bench/ann_benchmarks/annlib driven through the calls the ann-benchmarks harness makes.

The folder is copied into a package laid out like ann-benchmarks
(<pkg>/algorithms/base/module.py, <pkg>/algorithms/annlib/module.py) so its
relative import of BaseANN resolves as it would there. BaseANN is the real
one when ann-benchmarks is installed, else a stand-in with the same methods.
"""
import importlib
import inspect
import itertools
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from annlib.benchmarks.recall import knn_recall, metric_distances
from annlib.demo import load_demo_data

from conftest import clustered

WRAPPER = Path(__file__).resolve().parents[1] / "bench" / "ann_benchmarks" / "annlib"

STANDIN_BASE = '''
try:
    from ann_benchmarks.algorithms.base.module import BaseANN
except ImportError:
    import resource

    class BaseANN:
        """Stand-in with ann-benchmarks' BaseANN interface."""

        def done(self):
            pass

        def get_memory_usage(self):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux

        def fit(self, X):
            pass

        def query(self, q, n):
            return []

        def batch_query(self, X, n):
            self.res = [self.query(q, n) for q in X]

        def get_batch_results(self):
            return self.res

        def get_additional(self):
            return {}

        def __str__(self):
            return self.name
'''


@pytest.fixture(scope="module")
def wrapper_module(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    package = root / "annbench_standin"
    (package / "algorithms" / "base").mkdir(parents=True)
    for init in (package, package / "algorithms", package / "algorithms" / "base"):
        (init / "__init__.py").write_text("")
    (package / "algorithms" / "base" / "module.py").write_text(STANDIN_BASE)
    shutil.copytree(WRAPPER, package / "algorithms" / "annlib")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("annbench_standin.algorithms.annlib.module")
    finally:
        sys.path.remove(str(root))


def harness_run(module, metric, build_args, query_args, train, test, true_distances, count=10):
    """What ann-benchmarks' runner does for one definition: instantiate, fit between two
    memory readings, then per query setting single queries and a batch, recall from the
    recomputed distances of the returned ids."""
    algo = module.Annlib(metric, *build_args)
    before = algo.get_memory_usage()
    algo.fit(train)
    assert algo.get_memory_usage() - before >= 0
    out = []
    for args in query_args:
        algo.set_query_arguments(*args)
        name = str(algo)
        single = np.array([algo.query(v, count) for v in test])
        algo.batch_query(test, count)
        batch = np.asarray(algo.get_batch_results())
        assert single.shape == batch.shape == (len(test), count)
        np.testing.assert_array_equal(single, batch)
        recall = knn_recall(true_distances, metric_distances(metric, test, train, batch), count)
        out.append((name, recall, algo.get_additional()))
    algo.done()
    return out


def test_euclidean_recall_on_bundled_sift(wrapper_module):
    train, test, truth = load_demo_data()
    test = test[:200]
    true_distances = np.sqrt(((train[truth[:200, :10]] - test[:, None, :]) ** 2).sum(axis=2))
    results = harness_run(wrapper_module, "euclidean", [200, 2, None, None], [(4, 40), (20, 100)],
                          train, test, true_distances)
    (name_low, recall_low, extra), (name_high, recall_high, _) = results
    assert "leaves=200" in name_low and "leaves_to_search=4" in name_low and "reorder=40" in name_low
    assert "leaves_to_search=20" in name_high and "reorder=100" in name_high
    assert recall_high >= 0.9
    assert recall_high >= recall_low
    assert extra["simd_level"]


def test_angular_recall_with_soar(wrapper_module, rng):
    train, test = clustered(rng, 8000, 48, clusters=64, nq=100)
    unit_train = train / np.linalg.norm(train, axis=1, keepdims=True)
    unit_test = test / np.linalg.norm(test, axis=1, keepdims=True)
    cos = unit_test.astype(np.float64) @ unit_train.T.astype(np.float64)
    true_distances = np.sort(1.0 - cos, axis=1)[:, :10]
    [(name, recall, _)] = harness_run(wrapper_module, "angular", [80, 2, 0.2, 1.5], [(10, 100)],
                                      train.copy(), test, true_distances)
    assert "soar_lambda=1.5" in name and "threshold=0.2" in name
    assert recall >= 0.9


def test_fit_does_not_modify_the_harness_array(wrapper_module, rng):
    train = rng.standard_normal((500, 16)).astype(np.float32)
    copy = train.copy()
    algo = wrapper_module.Annlib("angular", 10)
    algo.fit(train)
    np.testing.assert_array_equal(train, copy)


def test_unsupported_metric_is_refused(wrapper_module):
    with pytest.raises(ValueError, match="hamming"):
        wrapper_module.Annlib("hamming", 100)


def expand(groups):
    """ann-benchmarks' expansion of a run group: the product of the args lists, and of the query_args lists."""
    for group in groups.values():
        for args in itertools.product(*group["args"]):
            yield list(args), list(itertools.product(*group["query_args"]))


def test_config_yml_instantiates_for_both_metrics(wrapper_module):
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((WRAPPER / "config.yml").read_text())
    set_args = inspect.signature(wrapper_module.Annlib.set_query_arguments)
    for metric in ("angular", "euclidean"):
        [entry] = config["float"][metric]
        assert entry["module"] == "ann_benchmarks.algorithms.annlib"
        assert entry["constructor"] == "Annlib" and entry["base_args"] == ["@metric"]
        combos = list(expand(entry["run_groups"]))
        assert combos
        for args, query_args in combos:
            algo = getattr(wrapper_module, entry["constructor"])(metric, *args)
            assert f"leaves={args[0] if args else 'default'}" in str(algo)
            for q in query_args:
                set_args.bind(algo, *q)
                algo.set_query_arguments(*q)



def test_only_real_ids_reach_the_harness(wrapper_module, rng):
    """With fewer points than asked for, results are padded with id -1 inside annlib; the
    harness would read -1 as the last training row (and two of them fail its duplicate
    check), so the wrapper returns only real, distinct ids, single and batched."""
    train = rng.standard_normal((6, 8)).astype(np.float32)
    test = rng.standard_normal((5, 8)).astype(np.float32)
    for metric in ("euclidean", "angular"):
        algo = wrapper_module.Annlib(metric, 2)
        algo.fit(train)
        algo.set_query_arguments(2, 10)
        algo.batch_query(test, 10)
        rows = [algo.query(v, 10) for v in test] + list(algo.get_batch_results())
        for row in rows:
            assert len(row) == len(set(row)) == 6  # the harness's own duplicate check
            assert all(0 <= int(i) < len(train) for i in row)


def test_recommended_group_takes_annlibs_defaults(wrapper_module, rng):
    """No build arguments: annlib.defaults decides for the data (here 6,000 points, d=48,
    angular: 200 leaves, 2 dims per block, threshold 0.2, and SOAR as the build decided: none
    on Gaussian points, where it would scan more)."""
    import annlib.defaults as defaults

    train = rng.standard_normal((6000, 48)).astype(np.float32)
    algo = wrapper_module.Annlib("angular")
    algo.fit(train)
    config = algo.searcher.config
    assert config.tree.num_leaves == defaults.num_leaves_for(6000) == 200
    assert config.score_ah.dimensions_per_block == defaults.dims_per_block_for(48)
    assert config.score_ah.anisotropic_quantization_threshold == pytest.approx(defaults.threshold_for(48, "dot_product"))
    assert config.tree.soar_lambda is None
    assert "leaves=200" in str(algo) and "soar_lambda=None" in str(algo)
