"""bench/soar_pays.py on small data: the leaf-level test runs for each measure and its
ratios are consistent (SOAR never needs more leaves than plain for the same recall)."""
import re
from pathlib import Path

import numpy as np
import pytest

from annlib.datasets import write_hdf5
from conftest import run_python

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "soar_pays.py"


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_the_soar_test_reports_points_for_each_target(tmp_path, metric):
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((40, 16)).astype(np.float32) * 3
    x = (centers[rng.integers(0, 40, 4000)] + rng.standard_normal((4000, 16))).astype(np.float32)
    path = tmp_path / f"tiny-{metric}.hdf5"
    write_hdf5(path, x, x[:10], np.zeros((10, 10), np.int32), np.zeros((10, 10), np.float32), metric)
    # From a neutral directory: the installed annlib, as a user runs the script.
    out = run_python(str(SCRIPT), str(path), "--queries", "60", "--spill-sample", "2000",
                     capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert ("spherical" in out.stdout) == (metric == "angular")
    rows = re.findall(r"^\| (0\.\d+) \| (\d+), ([\d,]+) \| (\d+), ([\d,]+) \| ([\d.]+) \|$", out.stdout, re.M)
    assert [r[0] for r in rows] == ["0.9", "0.95", "0.99"]
    for _, plain_leaves, plain_points, soar_leaves, soar_points, ratio in rows:
        assert int(soar_leaves) <= int(plain_leaves)  # a second copy can only be found sooner
        plain, soar = float(plain_points.replace(",", "")), float(soar_points.replace(",", ""))
        assert abs(float(ratio) - soar / plain) < 0.011  # the points are printed rounded
