"""annlib.datasets: HDF5 and vecs formats, ground truth, fetch (local files only)."""
import numpy as np
import pytest

from annlib import datasets as D
from conftest import exact_topk, shared_dataset


def test_hdf5_round_trip(tmp_path, rng):
    train = rng.standard_normal((300, 12)).astype(np.float32)
    test = rng.standard_normal((20, 12)).astype(np.float32)
    ids, dist = D.ground_truth(train, test, 10, "euclidean")
    D.write_hdf5(tmp_path / "toy.hdf5", train, test, ids, dist, "euclidean")
    ds = D.read_hdf5(tmp_path / "toy.hdf5")
    assert ds.metric == "euclidean" and ds.distance_measure == "squared_l2"
    assert np.array_equal(ds.train, train) and np.array_equal(ds.neighbors, ids)
    ref_ids, ref_d2 = exact_topk(train, test, 10, "squared_l2")
    assert np.array_equal(ids, ref_ids)
    assert np.allclose(dist, np.sqrt(ref_d2), rtol=1e-4)


def test_ground_truth_angular(rng):
    train = rng.standard_normal((500, 8)).astype(np.float32)
    test = rng.standard_normal((10, 8)).astype(np.float32)
    ids, dist = D.ground_truth(train, test, 5, "angular")
    ref_ids, cos = exact_topk(train, test, 5, "cosine")
    assert np.array_equal(ids, ref_ids) and np.allclose(dist, 1 - cos, atol=1e-5)


def test_bad_hdf5(tmp_path):
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        D.read_hdf5(tmp_path / "junk.hdf5")
    with pytest.raises(FileNotFoundError):
        D.read_hdf5(tmp_path / "missing.hdf5")


def test_vecs_round_trip_and_errors(tmp_path, rng):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    D.write_fvecs(tmp_path / "a.fvecs", x)
    assert np.array_equal(D.read_fvecs(tmp_path / "a.fvecs"), x)
    i = rng.integers(0, 1000, (4, 3)).astype(np.int32)
    D.write_ivecs(tmp_path / "a.ivecs", i)
    assert np.array_equal(D.read_ivecs(tmp_path / "a.ivecs"), i)
    b = rng.integers(0, 256, (3, 6)).astype(np.uint8)
    rows = np.concatenate([np.full((3, 4), 0, np.uint8), b], axis=1)
    rows[:, :4] = np.frombuffer(np.int32(6).tobytes(), np.uint8)
    rows.tofile(tmp_path / "a.bvecs")
    assert np.array_equal(D.read_bvecs(tmp_path / "a.bvecs"), b)
    raw = (tmp_path / "a.fvecs").read_bytes()
    (tmp_path / "t.fvecs").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="truncated"):
        D.read_fvecs(tmp_path / "t.fvecs")


def test_fetch_from_local_url_and_offline(tmp_path, monkeypatch, rng):
    src = tmp_path / "mirror"
    src.mkdir()
    train = rng.standard_normal((50, 4)).astype(np.float32)
    ids, dist = D.ground_truth(train, train[:5], 3, "angular")
    D.write_hdf5(src / "glove-25-angular.hdf5", train, train[:5], ids, dist, "angular")
    monkeypatch.setenv("ANNLIB_DATA_DIR", str(tmp_path / "cache"))
    path = D.fetch("glove-25-angular", base_url=src.as_uri(), progress=False)
    assert path == tmp_path / "cache" / "glove-25-angular.hdf5"
    assert np.array_equal(D.read_hdf5(path).train, train)
    assert D.fetch("glove-25-angular", base_url="http://127.0.0.1:9/") == path  # cached: no network
    with pytest.raises(ConnectionError, match="could not download.*copy sift-128-euclidean.hdf5"):
        D.fetch("sift-128-euclidean", base_url="http://127.0.0.1:9", timeout=2, progress=False)
    assert not list((tmp_path / "cache").glob("*.part"))
    with pytest.raises(ValueError, match="unknown dataset"):
        D.fetch("no-such-set")


@pytest.mark.parametrize("name", ["sift-150k-128-euclidean.hdf5", "words-100k-384-angular.hdf5"])
def test_shared_datasets_load_and_match_ground_truth(name):
    ds = D.read_hdf5(shared_dataset(name))
    assert ds.train.dtype == np.float32 and ds.train.shape[1] == ds.test.shape[1]
    ids, _ = D.ground_truth(ds.train, ds.test[:50], 10, ds.metric)
    agree = np.mean([len(np.intersect1d(a, b[:10])) / 10 for a, b in zip(ids, ds.neighbors[:50])])
    assert agree >= 0.999
