"""Shared fixtures: seeded data, SIMD levels, the shared dev datasets (optional)."""
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import annlib
from annlib._forking import grpc_fork_handlers_off
from annlib.tuning.ranks import _positions

# Before gRPC loads here: the Ray clusters these tests start inherit the setting.
grpc_fork_handlers_off()

SHARED_DATASETS = Path(os.environ.get("ANNLIB_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def run_python(*args, **kwargs) -> subprocess.CompletedProcess:
    """`python ARGS` in a child process, from a neutral directory: in the repo root
    `import annlib` would find the source tree, which has no compiled extension when
    annlib is pip-installed (as in CI)."""
    kwargs.setdefault("cwd", tempfile.gettempdir())
    return subprocess.run([sys.executable, *args], **kwargs)


def run_python_capped(code: str, gib: int = 3, **kwargs) -> subprocess.CompletedProcess:
    """run_python("-c", code) in a child that may take at most `gib` GiB: RLIMIT_AS, so a runaway
    allocation fails instead of taking the machine; under AddressSanitizer (.ci/sanitize), whose
    shadow memory needs terabytes of address space, its own limit on one allocation instead."""
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        options = os.environ.get("ASAN_OPTIONS", "")
        env = {**os.environ, "ASAN_OPTIONS": f"{options}:max_allocation_size_mb={gib << 10}".lstrip(":")}
        return run_python("-c", code, env=env, **kwargs)
    limit = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({gib} << 30, {gib} << 30))\n"
    return run_python("-c", limit + code, **kwargs)


def start_python(*args, **kwargs) -> subprocess.Popen:
    """run_python's child, started and left running."""
    kwargs.setdefault("cwd", tempfile.gettempdir())
    return subprocess.Popen([sys.executable, *args], **kwargs)


def run_threads(workers, seconds):
    """Runs each worker(stop) in its own thread for `seconds`; returns the errors raised."""
    stop = threading.Event()
    errors = []

    def guarded(fn):
        try:
            fn(stop)
        except Exception as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return errors


def positions_per_leaf_count(searcher, q, leaves, count, wanted, num_threads=2):
    """ah_ranks' answer the slow way: one search per leaf count of the grid (ah_candidates),
    each wanted id's position in its list."""
    return np.stack([_positions(searcher.ah_candidates(q, int(l), count, num_threads=num_threads)[0], wanted, count)
                     for l in leaves])


@pytest.fixture(scope="module")
def neutral_cwd():
    """The tests' working directory out of the checkout while Ray runs: Ray's workers start
    in the driver's directory, where `import annlib` would find the source tree (see
    run_python)."""
    previous = os.getcwd()
    os.chdir(tempfile.gettempdir())
    try:
        yield
    finally:
        os.chdir(previous)


def with_screen(searcher, decision):
    """A copy of a binned brute-force searcher (same SIMD level) whose screen choice is fixed as
    an update carries it, not checked on a sample: 0 none, 1 the kernels' staged screen, 2 the
    int8 copy. The way to reach a screen the check would not pick first."""
    copy = searcher.with_simd_level(*searcher._simd_request)
    copy._state = copy._make_state(copy.config, copy._state.arrays, decision)
    return copy


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=annlib.available_simd_levels())
def simd_level(request):
    """Every SIMD level this CPU can run."""
    return request.param


def clustered(rng, n, d, clusters=32, spread=0.15, nq=0):
    """n points around `clusters` random centers; with nq > 0 also returns nq
    queries drawn around the same centers (queries from other centers would
    share a handful of high-norm neighbors and make recall estimates noisy)."""
    centers = rng.standard_normal((clusters, d)).astype(np.float32)

    def draw(m):
        labels = rng.integers(0, clusters, m)
        return (centers[labels] + spread * rng.standard_normal((m, d))).astype(np.float32)

    return (draw(n), draw(nq)) if nq else draw(n)


def exact_topk(x, q, k, measure):
    """float64 NumPy reference: (ids, scores in the metric's natural sense)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if measure == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if measure == "squared_l2":
        scores = (q64**2).sum(1)[:, None] - 2 * q64 @ x64.T + (x64**2).sum(1)[None, :]
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    else:
        scores = q64 @ x64.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


def exact_among(x, q, k, measure, rows):
    """exact_topk over the rows x[rows] only (a filter, or the points left after deletes),
    named by those row numbers."""
    rows = np.asarray(rows)
    return rows[exact_topk(x[rows], q, k, measure)[0]]


def recall(ids, truth):
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(a[:k], b)) / k for a, b in zip(ids, truth)]))


def shared_dataset(name):
    path = SHARED_DATASETS / name
    if not path.is_file():
        pytest.skip(f"shared dataset {path} not present")
    return path
