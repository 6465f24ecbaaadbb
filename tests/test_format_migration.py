"""Indexes saved by annlib 0.1.0 (format version 1, tests/data/v1, made by
tests/data/make_v1_fixtures.py) still load and answer exactly as they did then."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import annlib

V1 = Path(__file__).resolve().parent / "data" / "v1"
NAMES = ["l2_soar_updated", "cosine_int8", "dot_bf16_no_tree", "brute_l2_float32", "brute_dot_int8_binned"]
LEVEL = (V1 / "simd_level.txt").read_text().strip()  # the kernels that produced the answers


def answers(name):
    for ids_file in sorted(V1.glob(f"{name}.*.ids.npy")):
        key = ids_file.name.split(".")[1]
        yield key, np.load(ids_file), np.load(V1 / f"{name}.{key}.scores.npy")


@pytest.mark.parametrize("name", NAMES)
def test_version_1_indexes_answer_as_they_did(tmp_path, name):
    shutil.copytree(V1 / name, tmp_path / name)  # a load may tidy leftovers beside it: never in the repo
    index = annlib.load(tmp_path / name)
    q = np.load(V1 / "queries.npy")
    exact = LEVEL in annlib.available_simd_levels()
    if exact:
        index = index.with_simd_level(LEVEL)
    for key, ids, scores in answers(name):
        if key == "default":
            got = index.search_batched(q)
        elif key == "knobs":
            got = index.search_batched(q, 4, 60, 5)
        else:
            got = index.search_batched(q, allowlist=np.arange(0, 2000, 3))
        if exact:
            np.testing.assert_array_equal(got[0], ids, err_msg=key)
            np.testing.assert_array_equal(got[1], scores, err_msg=key)
        else:  # other kernels round differently: the same answers up to near-ties
            overlap = np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(got[0], ids)])
            assert overlap >= 0.97, key
            np.testing.assert_allclose(got[1], scores, rtol=1e-3, atol=1e-3)
