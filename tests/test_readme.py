"""Every Python block of the README runs as pasted, each in a fresh interpreter in an
empty directory, and prints sensible results on the bundled SIFT-20k data."""
import re
from pathlib import Path

import pytest
from conftest import run_python

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_block_runs_as_pasted(number, tmp_path):
    code = BLOCKS[number]
    if "annlib.service" in code:
        pytest.importorskip("grpc")
    result = run_python("-c", code, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"README block {number} failed:\n{code}\n{result.stderr[-3000:]}"
    print(result.stdout)
    # Whatever recall a block prints is a good one on this data.
    for value in re.findall(r"recall@10[^:]*: ([0-9.]+)", result.stdout):
        assert float(value) >= 0.9, result.stdout
    for value in re.findall(r"(?:shared with exact MaxSim|true top-10 found): ([0-9]+)", result.stdout):
        assert int(value) >= 7, result.stdout
