"""Fuzzing annlib.load: mutated index directories (bit flips, truncations, manifest and
config edits) must give ValueError or OSError, or load and search without crashing;
never another exception, never a crash. Each round runs in a child process, so a
crash fails the test with the mutation that caused it."""
import json

import numpy as np
import pytest

import annlib
from conftest import run_python
from test_multivector import synthetic_corpus

_FUZZ = r"""
import json, os, random, shutil, sys, traceback
from pathlib import Path
import numpy as np
import annlib

source, scratch, seed, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)

def files_of(root):
    return sorted(p for p in root.rglob("*") if p.is_file())

def flip_bits(f):
    data = bytearray(f.read_bytes())
    if data:
        for _ in range(rng.choice([1, 1, 2, 8])):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    f.write_bytes(bytes(data))

def truncate(f):
    data = f.read_bytes()
    f.write_bytes(data[:rng.randrange(len(data) + 1)])

def json_nodes(node, path=()):
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from json_nodes(child, path + (key,))

ODD_VALUES = [None, -1, 0, 2**31, 2**63, 1e308, "x", "../../etc/passwd", [], {}, True, [2**40], "<f4", "|O"]

def edit_json(f):
    # Edits a manifest or config and, like a careful attacker, keeps the config checksum valid.
    doc = json.loads(f.read_text())
    nodes = [p for p, _ in json_nodes(doc) if p]
    if nodes:
        where = rng.choice(nodes)
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if rng.random() < 0.3 and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = rng.choice(ODD_VALUES)
    text = json.dumps(doc)
    f.write_text(text)
    if f.name == "config.json":
        manifest = f.parent / "manifest.json"
        m = json.loads(manifest.read_text())
        import hashlib
        m["config_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        manifest.write_text(json.dumps(m))

def rewrite_array(f):
    # Replaces an array's values with odd ones of the same shape and dtype, checksum kept valid.
    arr = np.load(f)
    odd = arr.copy()
    if odd.size:
        idx = rng.randrange(odd.size)
        choices = [0, -1, 1, 2**30] if odd.dtype.kind in "iu" else [np.nan, np.inf, -np.inf, 1e30, 0.0]
        value = rng.choice(choices)
        if odd.dtype.kind == "u":
            value = abs(int(value)) % (np.iinfo(odd.dtype).max + 1)
        elif odd.dtype.kind == "i":
            value = max(min(int(value), np.iinfo(odd.dtype).max), np.iinfo(odd.dtype).min)
        odd.ravel()[idx] = value
    np.save(f, odd, allow_pickle=False)
    manifest = f.parent / "manifest.json"
    m = json.loads(manifest.read_text())
    import hashlib
    m["arrays"][f.stem]["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(m))

counts = {"loaded": 0, "refused": 0}
for r in range(rounds):
    target = scratch / f"r{r}"
    shutil.copytree(source, target)
    files = files_of(target)
    f = rng.choice(files)
    kind = rng.choice(["flip", "truncate", "json", "array", "delete"])
    if kind == "json" and f.suffix != ".json":
        f = rng.choice([p for p in files if p.suffix == ".json"])
    if kind == "array" and f.suffix != ".npy":
        f = rng.choice([p for p in files if p.suffix == ".npy"])
    label = f"round {r}: {kind} {f.relative_to(target)}"
    print(label, flush=True)
    {"flip": flip_bits, "truncate": truncate, "json": edit_json, "array": rewrite_array,
     "delete": lambda p: p.unlink()}[kind](f)
    verify, mmap = rng.random() < 0.5, rng.random() < 0.5
    try:
        index = annlib.load(target, mmap=mmap, verify=verify)
        counts["loaded"] += 1
        if isinstance(index, annlib.MultiVectorIndex):
            d = index.documents.dim
            index.search(np.ones(d, np.float32), np.ones((3, index.token_dim), np.float32), k=3)
        else:
            q = np.ones((20, index.dim), np.float32)
            index.search_batched(q)
            index.search(q[0])
    except (ValueError, OSError):
        counts["refused"] += 1
    except Exception:
        print("UNEXPECTED", label, traceback.format_exc(), flush=True)
        sys.exit(3)
    shutil.rmtree(target)
print(json.dumps(counts))
"""


@pytest.fixture(scope="module")
def saved_indexes(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("fuzz-source")
    x = rng.standard_normal((500, 8)).astype(np.float32)
    (annlib.builder(x, 5, "squared_l2").tree(8, 3, soar_lambda=1.0).score_ah(2).reorder(20, dtype="int8")
     .build(progress=False).save(root / "quantized"))
    annlib.builder(x, 5, "cosine").score_brute_force(0.9).build().save(root / "brute_force")
    pooled, tokens, offsets, _ = synthetic_corpus(rng)
    annlib.MultiVectorIndex.build(pooled[:60], tokens[:offsets[60]], offsets[:61], progress=False).save(
        root / "multivector")
    return root


def fuzz(source, scratch, seed, rounds):
    scratch.mkdir()
    proc = run_python("-c", _FUZZ, str(source), str(scratch), str(seed), str(rounds),
                          capture_output=True, text=True, timeout=900)
    last = proc.stdout.strip().splitlines()[-40:]
    assert proc.returncode == 0, f"exit {proc.returncode} after:\n" + "\n".join(last) + proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["loaded"] + counts["refused"] == rounds
    return counts


@pytest.mark.parametrize("kind", ["quantized", "brute_force", "multivector"])
def test_mutated_index_directories_never_crash(saved_indexes, tmp_path, kind):
    counts = fuzz(saved_indexes / kind, tmp_path / "scratch", seed=11, rounds=150)
    assert counts["refused"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["quantized", "brute_force", "multivector"])
def test_mutated_index_directories_never_crash_long(saved_indexes, tmp_path, kind):
    fuzz(saved_indexes / kind, tmp_path / "scratch", seed=12345, rounds=2000)
