"""Save/load: round trip, memory mapping, atomic overwrite, corrupt files."""
import json
import os
import shutil

import numpy as np
import pytest

import annlib
import annlib.io as aio
from conftest import run_python, run_python_capped


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
    assert isinstance(t._state.arrays["panels"], np.memmap)
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
    (lambda p: corrupt(p, "bias.npy", truncate=100), "bias.npy has a damaged header"),
    (lambda p: corrupt(p, "bias.npy", truncate=200), "bias.npy is truncated"),
    (lambda p: (p / "scale.npy").unlink(), "scale.npy is missing"),
    (lambda p: (p / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "manifest.json is corrupt"),
    (lambda p: (p / "config.json").write_text((p / "config.json").read_text().replace("int8", "float32")),
     "config.json does not match"),
    (lambda p: (p / "manifest.json").write_text(
        (p / "manifest.json").read_text().replace(f'"format_version": {aio.FORMAT_VERSION}', '"format_version": 99')),
     "version 99 is newer.*upgrade annlib"),
    (lambda p: (p / "manifest.json").write_text(
        (p / "manifest.json").read_text().replace(f'"format_version": {aio.FORMAT_VERSION}', '"format_version": 0')),
     "version 0 is not supported"),
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
    with pytest.raises(FileNotFoundError, match="no index at"):
        annlib.load(tmp_path / "nope")
    shutil.rmtree(tmp_path)


# -- crashes during save ----------------------------------------------------------

# A child process saves index A, then starts saving index B and dies (os._exit, as
# kill -9 would leave it) at the n-th call of one file-system step.
_CRASHING_SAVE = r"""
import os, shutil, sys
import numpy as np
import annlib
import annlib._fs as fs

path, step, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.arange(600, dtype=np.float32).reshape(100, 6)
annlib.builder(x, 3, "dot_product").score_brute_force().build().save(path)
b = annlib.builder(x[:40], 3, "dot_product").score_brute_force().build()
owner = {"rename": os, "fsync": os, "rmtree": shutil, "exchange": fs}[step]
real = getattr(owner, step)
calls = 0

def dying(*args, **kwargs):
    global calls
    calls += 1
    if calls == n:
        os._exit(9)
    return real(*args, **kwargs)

setattr(owner, step, dying)
b.save(path)
print("finished")
"""


def crash_points(fallback):
    """(step, n) for every call of each step a save of an existing index makes."""
    steps = {"rename": 3 if fallback else 1, "fsync": 12, "rmtree": 1}
    if not fallback:
        steps["exchange"] = 1
    return [(step, n) for step, count in steps.items() for n in range(1, count + 1)]


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_killed_save_always_leaves_an_index(tmp_path, fallback):
    """Whatever instant a save dies at, the next load finds the old index or the new one
    (never none), and the leftovers of the killed save are gone after it."""
    env = dict(os.environ, ANNLIB_NO_ATOMIC_EXCHANGE="1" if fallback else "0")
    outcomes = set()
    for step, n in crash_points(fallback):
        path = tmp_path / f"{step}-{n}" / "idx"
        path.parent.mkdir()
        proc = run_python("-c", _CRASHING_SAVE, str(path), step, str(n), env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 9), proc.stderr
        size = annlib.load(path).size()  # old (100 points) or new (40)
        assert size in (100, 40)
        assert sorted(p.name for p in path.parent.iterdir()) == ["idx"], (step, n)
        outcomes.add((proc.returncode, size))
    assert (9, 100) in outcomes and (9, 40) in outcomes  # died before and after the switch


def test_killed_between_renames_is_finished_by_the_next_save(tmp_path):
    """The two-rename fallback killed after moving the old index aside: no index at the
    path until the next save or load finishes the job."""
    env = dict(os.environ, ANNLIB_NO_ATOMIC_EXCHANGE="1")
    path = tmp_path / "idx"
    proc = run_python("-c", _CRASHING_SAVE, str(path), "rename", "2", env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert not path.exists()
    names = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert names == [".idx.old", ".idx.tmp"]
    x = np.ones((5, 6), np.float32)
    annlib.builder(x, 2, "dot_product").score_brute_force().build().save(path)
    assert annlib.load(path).size() == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_running_save_is_never_taken_for_a_leftover(tmp_path):
    """A temporary directory whose saver is alive (it holds the claim) survives a
    recovery pass in another process; once its owner is gone it is removed."""
    import annlib._fs as fs

    (tmp_path / "idx").mkdir()
    busy = tmp_path / ".idx.tmp-0123456789ab"
    busy.mkdir()
    claim = fs.claim(busy)
    code = f"import annlib.io as aio; print(aio.recover({str(tmp_path / 'idx')!r}))"
    out = run_python("-c", code, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True" and busy.exists()
    claim.release()
    out = run_python("-c", code, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False" and not busy.exists()


# -- damaged and hostile files ------------------------------------------------------

def edit_manifest(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def rewrite_array(path, name, array):
    """Replaces an array and its checksum, as a careful attacker (or a buggy tool) would."""
    np.save(path / f"{name}.npy", array, allow_pickle=False)

    def edit(m):
        m["arrays"][name].update(shape=list(array.shape), dtype=array.dtype.str,
                                 sha256=aio._sha256_of(path / f"{name}.npy"))

    edit_manifest(path, edit)


@pytest.fixture
def quantized_dir(tmp_path, rng):
    x = rng.standard_normal((400, 8)).astype(np.float32)
    s = annlib.builder(x, 5, "squared_l2").tree(8, 2).score_ah(2).reorder(20).build(progress=False)
    s.save(tmp_path / "q")
    return tmp_path / "q"


@pytest.mark.parametrize("edit,match", [
    (lambda m: m["arrays"]["codes"].pop("file"), "names file None"),
    (lambda m: m["arrays"]["codes"].pop("shape"), "shape None"),
    (lambda m: m["arrays"]["codes"].pop("dtype"), "dtype None"),
    (lambda m: m["arrays"].update(codes=[1, 2]), "not a JSON object"),
    (lambda m: m["arrays"]["codes"].update(shape="12"), "shape '12'"),
    (lambda m: m["arrays"]["codes"].update(shape=[True]), "shape"),
    (lambda m: m["arrays"]["codes"].update(dtype=7), "dtype 7"),
    (lambda m: m["arrays"]["codes"].update(dtype="|O"), "numeric"),
    (lambda m: m["arrays"]["codes"].update(file="../codes.npy"), "expected codes.npy"),
    (lambda m: m["arrays"]["codes"].update(file="/etc/passwd"), "expected codes.npy"),
    (lambda m: m["arrays"].update({"../x": m["arrays"]["codes"]}), "not a valid identifier"),
    (lambda m: m.update(arrays=[]), "'arrays' must be an object"),
    (lambda m: m.update(subindexes=["../elsewhere"]), "not a valid identifier"),
    (lambda m: m.update(subindexes="documents"), "'subindexes'"),
    (lambda m: m["arrays"]["codes"].update(sha256=12), "sha256"),
])
def test_malformed_manifest_entries_are_value_errors(quantized_dir, edit, match):
    edit_manifest(quantized_dir, edit)
    for verify in (True, False):
        with pytest.raises(ValueError, match=match):
            annlib.load(quantized_dir, verify=verify)


def test_symlinked_array_outside_the_index_is_refused(quantized_dir, tmp_path):
    outside = tmp_path / "outside.npy"
    shutil.copy(quantized_dir / "codes.npy", outside)
    (quantized_dir / "codes.npy").unlink()
    (quantized_dir / "codes.npy").symlink_to(outside)
    with pytest.raises(ValueError, match="symlink"):
        annlib.load(quantized_dir, verify=False)


def test_npy_header_claiming_a_huge_shape_allocates_nothing(quantized_dir):
    """A header (and manifest) claiming 10^12 rows over a small file: refused before any
    allocation, memory-mapped or not."""
    f = quantized_dir / "slot_bias.npy"
    payload = f.read_bytes()
    header = np.lib.format.header_data_from_array_1_0(np.load(f))
    header["shape"] = (10**12,)
    with open(f, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        out.write(payload[128:])
    edit_manifest(quantized_dir, lambda m: m["arrays"]["slot_bias"].update(shape=[10**12]))
    for mmap in (True, False):
        with pytest.raises(ValueError, match="slot_bias.npy is truncated"):
            annlib.load(quantized_dir, mmap=mmap, verify=False)


@pytest.mark.parametrize("name", ["centroids", "lut_centers", "slot_bias", "row_bias", "centroid_row_bias"])
def test_nan_in_small_float_arrays_is_refused_even_with_valid_checksums(quantized_dir, name):
    arr = np.load(quantized_dir / f"{name}.npy").copy()
    arr.ravel()[len(arr.ravel()) // 2] = np.nan
    rewrite_array(quantized_dir, name, arr)
    with pytest.raises(ValueError, match=f"{name}.*NaN"):
        annlib.load(quantized_dir)


def test_nan_in_brute_force_norms_is_refused(tmp_path, rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    annlib.builder(x, 3, "squared_l2").score_brute_force().build().save(tmp_path / "bf")
    norms = np.load(tmp_path / "bf" / "norms.npy").copy()
    norms[3] = np.inf
    rewrite_array(tmp_path / "bf", "norms", norms)
    with pytest.raises(ValueError, match="norms.*NaN or infinity"):
        annlib.load(tmp_path / "bf")


@pytest.mark.parametrize("meta", [[400, 8, 4], [2**40, 8, 4, 2], [400, -8, 4, 2], [400, 8, 4, 2**33]])
def test_damaged_meta_is_a_value_error_without_checksums(quantized_dir, meta):
    np.save(quantized_dir / "meta.npy", np.array(meta, np.int64))
    edit_manifest(quantized_dir, lambda m: m["arrays"]["meta"].update(shape=[len(meta)]))
    with pytest.raises(ValueError, match="meta"):
        annlib.load(quantized_dir, verify=False)


def test_saved_config_knobs_are_bounded_by_the_index(quantized_dir):
    """A config.json with a valid checksum asking for more leaves than the index has is
    refused; one asking for 2**31-1 candidates loads and searches within bounded memory
    (the candidate buffers are sized by the points held, not by the request)."""
    def set_config(edit):
        config = json.loads((quantized_dir / "config.json").read_text())
        edit(config)
        text = json.dumps(config)
        (quantized_dir / "config.json").write_text(text)
        edit_manifest(quantized_dir, lambda m: m.update(config_sha256=aio.hashlib.sha256(text.encode()).hexdigest()))

    set_config(lambda c: c["tree"].update(num_leaves_to_search=9, num_leaves=9))
    with pytest.raises(ValueError, match="9 leaves"):
        annlib.load(quantized_dir)
    set_config(lambda c: c["tree"].update(num_leaves_to_search=2, num_leaves=8))
    set_config(lambda c: c["reorder"].update(pre_reorder_num_neighbors=2**31))
    with pytest.raises(ValueError, match="pre_reorder_num_neighbors must be a positive integer"):
        annlib.load(quantized_dir)
    set_config(lambda c: c["reorder"].update(pre_reorder_num_neighbors=2**31 - 1))
    code = f"""
import numpy as np, annlib
s = annlib.load({str(quantized_dir)!r})
q = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
ids, _ = s.search_batched(q)
one, _ = s.search(q[0])
assert (ids >= 0).all() and (ids[0] == one).all()
print("ok")
"""
    out = run_python_capped(code, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
    # 2**31-1 results by default: refused at the first search, never allocated.
    set_config(lambda c: c.update(num_neighbors=2**31 - 1))
    index = annlib.load(quantized_dir)
    for call in (lambda q: index.search(q), lambda q: index.search_batched(q[None])):
        with pytest.raises(ValueError, match="exceeds the number of indexed points"):
            call(np.ones(8, np.float32))
