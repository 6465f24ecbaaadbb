"""Save/load: round trip, memory mapping, atomic overwrite, corrupt files."""
import json
import shutil

import numpy as np
import pytest

import annlib
import annlib.io as aio


@pytest.fixture
def built(rng):
    x = rng.standard_normal((700, 20)).astype(np.float32)
    return x, annlib.builder(x, 5, "squared_l2").score_brute_force(dtype="int8").build()


def test_round_trip_same_results(tmp_path, built):
    x, s = built
    s.save(tmp_path / "idx")
    for mmap in (True, False):
        t = annlib.load(tmp_path / "idx", mmap=mmap)
        assert t.config == s.config
        for a, b in zip(t.search_batched(x[:50]), s.search_batched(x[:50])):
            assert np.array_equal(a, b)
    t = annlib.load(tmp_path / "idx")
    assert isinstance(t._packed["panels"], np.memmap)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format_version"] == aio.FORMAT_VERSION and manifest["library_version"] == annlib.__version__
    assert all(len(e["sha256"]) == 64 for e in manifest["arrays"].values())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("measure", ["dot_product", "cosine"])
def test_round_trip_each_kind(tmp_path, rng, dtype, measure):
    x = rng.standard_normal((100, 9)).astype(np.float32)
    s = annlib.builder(x, 3, measure).score_brute_force(recall_target=0.9, dtype=dtype).build()
    s.save(tmp_path / "i")
    assert np.array_equal(annlib.load(tmp_path / "i").search_batched(x)[0], s.search_batched(x)[0])


def test_overwrite_replaces_and_leaves_no_temporaries(tmp_path, built, rng):
    x, s = built
    s.save(tmp_path / "idx")
    other = annlib.builder(x[:100], 2, "dot_product").score_brute_force().build()
    other.save(tmp_path / "idx")
    assert annlib.load(tmp_path / "idx").size() == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_failed_save_keeps_previous_index(tmp_path, built, monkeypatch):
    x, s = built
    s.save(tmp_path / "idx")
    calls = {"n": 0}
    real_save = np.save

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        annlib.builder(x[:10], 2, "dot_product").score_brute_force().build().save(tmp_path / "idx")
    monkeypatch.undo()
    assert annlib.load(tmp_path / "idx").size() == 700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_refuses_to_overwrite_a_non_index_directory(tmp_path, built):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("do not delete")
    with pytest.raises(ValueError, match="not an annlib index"):
        built[1].save(tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "do not delete"


def corrupt(path, name, data=None, truncate=None):
    f = path / name
    raw = f.read_bytes()
    if truncate is not None:
        raw = raw[:truncate]
    if data is not None:
        raw = raw[:-len(data)] + data
    f.write_bytes(raw)


@pytest.mark.parametrize("damage,match", [
    (lambda p: corrupt(p, "panels.npy", data=b"\x01\x02\x03"), "panels.npy is corrupt"),
    (lambda p: corrupt(p, "bias.npy", truncate=100), "bias.npy is corrupt"),
    (lambda p: (p / "scale.npy").unlink(), "scale.npy is missing"),
    (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "manifest.json is corrupt"),
    (lambda p: (p / "config.json").write_text((p / "config.json").read_text().replace("int8", "float32")),
     "config.json does not match"),
    (lambda p: (p / "manifest.json").write_text(
        (p / "manifest.json").read_text().replace('"format_version": 1', '"format_version": 99')), "version 99"),
])
def test_damaged_index_gives_clear_error(tmp_path, built, damage, match):
    built[1].save(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(ValueError, match=match):
        annlib.load(tmp_path / "idx")


def test_truncated_array_detected_without_checksums(tmp_path, built):
    built[1].save(tmp_path / "idx")
    corrupt(tmp_path / "idx", "panels.npy", truncate=200)
    with pytest.raises(ValueError, match="panels.npy"):
        annlib.load(tmp_path / "idx", verify=False)


def test_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="not an index directory"):
        annlib.load(tmp_path / "nope")
    shutil.rmtree(tmp_path)
