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


def copy_fixture(tmp_path, name):
    shutil.copytree(V1 / name, tmp_path / name)
    return tmp_path / name


def drop_arrays(path, names, replace=None):
    """Rewrites a saved index's manifest without `names` (and with `replace`d arrays), as an
    index saved before those arrays existed."""
    import json

    import annlib.io as aio

    manifest = json.loads((path / "manifest.json").read_text())
    for name in names:
        manifest["arrays"].pop(name)
        (path / f"{name}.npy").unlink()
    for name, arr in (replace or {}).items():
        np.save(path / f"{name}.npy", arr, allow_pickle=False)
        manifest["arrays"][name] = {"file": f"{name}.npy", "shape": list(arr.shape), "dtype": arr.dtype.str,
                                    "sha256": aio._sha256_of(path / f"{name}.npy")}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_version_1_tuned_defaults_are_applied_and_saved_into_the_config(tmp_path):
    path = copy_fixture(tmp_path, "l2_soar_updated")
    (path / "search_params.json").write_text(
        '{"leaves_to_search": 5, "pre_reorder_num_neighbors": 60, "final_num_neighbors": 4}')
    index = annlib.load(path)
    assert (index.config.tree.num_leaves_to_search, index.config.reorder.pre_reorder_num_neighbors,
            index.config.num_neighbors) == (5, 60, 4)
    q = np.load(V1 / "queries.npy")
    before = index.search_batched(q)
    index.save(tmp_path / "v2")
    assert not (tmp_path / "v2" / "search_params.json").exists()
    again = annlib.load(tmp_path / "v2")
    assert again.config == index.config
    np.testing.assert_array_equal(again.search_batched(q)[0], before[0])
    (path / "search_params.json").write_text('{"leaves_to_search": -1}')
    with pytest.raises(ValueError, match="search_params.json is invalid"):
        annlib.load(path)


def test_version_1_index_without_int8_centroids_is_upgraded_on_save(tmp_path):
    """Indexes saved before int8 centroid screening had float32 centroid panels and no
    centroid rows: they load with version 1's rules (exact panel scoring) and a save
    writes the version 2 arrays."""
    path = copy_fixture(tmp_path, "cosine_int8")
    centroids = np.load(path / "centroids.npy")
    packed = annlib._core.pack_dense(np.ascontiguousarray(centroids), "float32", False)
    drop_arrays(path, ["centroid_rows", "centroid_row_bias", "centroid_scale", "centroid_offset", "centroid_sums",
                       "centroid_scaled_sums"],
                replace={"centroid_panels": packed["panels"], "centroid_bias": packed["bias"]})
    old = annlib.load(path)
    q = np.load(V1 / "queries.npy")
    saved = {key: ids for key, ids, _ in answers("cosine_int8")}
    ids, _ = old.search_batched(q)
    assert np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(ids, saved["default"])]) >= 0.97
    old.save(tmp_path / "v2")
    import json

    manifest = json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and "centroid_rows" in manifest["arrays"]
    new = annlib.load(tmp_path / "v2")
    np.testing.assert_array_equal(new.search_batched(q)[0], saved["default"])  # the screened pipeline again


def test_version_1_brute_force_without_norms_is_upgraded_on_save(tmp_path):
    path = copy_fixture(tmp_path, "brute_l2_float32")
    norms = np.load(path / "norms.npy")
    drop_arrays(path, ["norms"])
    old = annlib.load(path)
    q = np.load(V1 / "queries.npy")
    old.save(tmp_path / "v2")
    np.testing.assert_allclose(np.load(tmp_path / "v2" / "norms.npy"), norms, rtol=1e-6)
    np.testing.assert_array_equal(annlib.load(tmp_path / "v2").search_batched(q)[0], old.search_batched(q)[0])
