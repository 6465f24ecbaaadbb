"""annlib: approximate nearest neighbor search with a C++ SIMD core.

    import annlib
    searcher = annlib.builder(db, 10, "dot_product").score_brute_force().build()
    ids, scores = searcher.search_batched(queries)

The package's layers import downward only (docs/architecture.md; the
import-linter contract in pyproject.toml checks it): this facade on top.
"""
from __future__ import annotations

from . import _core
from .builder import Builder, builder
from .config import BruteForceConfig, IndexConfig
from .indexes import load_single
from .io import load_index
from .limits import time_limit
from .multivector import MultiVectorIndex
from .params import SearchParams
from .quantized import QuantizedSearcher
from .recall_math import expected_recall, num_bins_for, recall_at_k
from .searcher import BruteForceSearcher, Searcher
from .tuning import TuneResult, tune
from .version import __version__


def _chain_sigint() -> None:
    """Ctrl-C also stops annlib calls running in other threads (a thread pool's, a
    server's) while Python's default SIGINT handler is installed (see
    csrc/bindings/interrupts.cpp); the main thread's calls stop either way."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _core.chain_sigint()


_chain_sigint()


def simd_level() -> str:
    """SIMD level the kernels use: the best this CPU supports, lowered by ANNLIB_SIMD_LEVEL."""
    return _core.simd_level()


def available_cores() -> int:
    """The threads num_threads=0 runs on: the cores this process may use (its CPU affinity on
    Linux, so taskset, cgroup cpusets and pinned containers count; every hardware thread elsewhere)."""
    return _core.available_cores()


def available_simd_levels() -> list[str]:
    """Every SIMD level this CPU can run, lowest first."""
    return list(_core.supported_simd_levels())


def load(path, mmap: bool = True, verify: bool = True):
    """Loads a saved index directory: a Searcher, or a MultiVectorIndex when
    one was saved there. Arrays are memory-mapped when mmap is true; verify
    checks every array's sha256 against the manifest first. Indexes saved in
    an older format load as they are (annlib/format_v1.py)."""
    loaded = load_index(path, mmap=mmap, verify=verify)
    if _saved_kind(loaded[0]) == "scann_compat":
        raise ValueError(f"{path} holds a searcher saved by annlib.scann_compat: load it with "
                         "annlib.scann_compat.scann_ops_pybind.load_searcher")
    if _saved_kind(loaded[0]) == "sharded":
        raise ValueError(f"{path} holds a sharded index: load it with annlib.distributed.load (each of its "
                         "shard_* directories loads alone with annlib.load)")
    if _saved_kind(loaded[0]) == "multivector":
        return MultiVectorIndex.from_saved(path, *loaded, mmap=mmap, verify=verify)
    return load_single(path, loaded=loaded)


def _saved_kind(config_json: str):
    import json

    try:
        data = json.loads(config_json)
    except json.JSONDecodeError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


__all__ = ["Builder", "BruteForceConfig", "BruteForceSearcher", "IndexConfig", "MultiVectorIndex",
           "QuantizedSearcher", "SearchParams", "Searcher", "TuneResult", "available_cores", "available_simd_levels",
           "builder", "expected_recall", "load", "num_bins_for", "recall_at_k", "simd_level", "time_limit", "tune",
           "__version__"]
