"""Command line: the demo on the bundled dataset, info, and the SIMD override."""
import os

import pytest

from annlib.cli import main
from annlib.demo import load_demo_data, run_demo
from conftest import run_python


def test_demo_reports_recall_and_qps(capsys):
    rows = run_demo(k=10)
    labels = [r["index"] for r in rows]
    assert labels[0] == "exact float32"
    by = {r["index"]: r for r in rows}
    assert by["exact float32"]["recall"] == 1.0
    assert by["binned recall_target=0.9"]["recall"] >= 0.9
    assert all(r["qps"] > 0 for r in rows)


def test_bundled_dataset_is_small_and_real():
    train, test, truth = load_demo_data()
    assert train.shape == (20000, 128) and test.shape == (500, 128) and truth.shape == (500, 100)
    assert (train == train.round()).all() and train.max() <= 255


def test_cli_info(capsys):
    assert main(["info"]) == 0
    assert "SIMD level in use" in capsys.readouterr().out


def python_code(code, **env):
    return run_python("-c", code, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("level", ["scalar", "avx2"])
def test_env_lowers_simd_level(level):
    import annlib
    if level not in annlib.available_simd_levels():
        pytest.skip(f"{level} not supported here")
    out = python_code("import annlib; print(annlib.simd_level())", ANNLIB_SIMD_LEVEL=level)
    assert out.stdout.strip() == level, out.stderr


def test_env_cannot_raise_or_misname_level():
    out = python_code("import annlib; print(annlib.simd_level())", ANNLIB_SIMD_LEVEL="bogus")
    assert out.returncode != 0 and "unknown SIMD level" in out.stderr
