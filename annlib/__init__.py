"""annlib: approximate nearest neighbor search with a C++ SIMD core.

    import annlib
    searcher = annlib.builder(db, 10, "dot_product").score_brute_force().build()
    ids, scores = searcher.search_batched(queries)
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _core
from .builder import Builder, builder
from .config import BruteForceConfig, IndexConfig
from .limits import time_limit
from .multivector import MultiVectorIndex
from .recall_math import expected_recall, num_bins_for
from .searcher import BruteForceSearcher, Searcher
from .tuning import SearchParams, TuneResult, tune


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


def available_simd_levels() -> list[str]:
    """Every SIMD level this CPU can run, lowest first."""
    return list(_core.supported_simd_levels())


def load(path, mmap: bool = True, verify: bool = True):
    """Loads a saved index directory: a Searcher, or a MultiVectorIndex when
    one was saved there. Arrays are memory-mapped when mmap is true; verify
    checks every array's sha256 against the manifest first."""
    from .io import load_index
    from .searcher import _searcher_kinds

    config_json, arrays, manifest = load_index(path, mmap=mmap, verify=verify)
    if _saved_kind(config_json) == "multivector":
        return MultiVectorIndex.from_saved(path, config_json, arrays, manifest, mmap=mmap, verify=verify)
    try:
        config = IndexConfig.from_json(config_json)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}/config.json is invalid: {exc}") from exc
    kind = _searcher_kinds().get(config.kind)
    try:
        searcher = kind(config, arrays)
    except _DAMAGE as exc:  # the arrays came from the files: any of these means they are damaged
        raise ValueError(f"{path}: saved arrays do not match the config ({exc})") from exc
    _apply_tuned_params(path, searcher)
    return searcher


# What a searcher's constructor raises on arrays that do not fit together.
_DAMAGE = (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError)


def _apply_tuned_params(path, searcher) -> None:
    """Applies search_params.json (written by `annlib tune --write`) when the index has one."""
    from pathlib import Path

    from .tuning.params import PARAMS_FILE

    params_path = Path(path) / PARAMS_FILE
    if not params_path.exists():
        return
    try:
        params = SearchParams.from_json(params_path.read_text(encoding="utf-8"))
        searcher.set_default_params(params)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{params_path} is invalid: {exc}") from exc


def _saved_kind(config_json: str):
    import json

    try:
        data = json.loads(config_json)
    except json.JSONDecodeError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


__all__ = ["Builder", "BruteForceConfig", "BruteForceSearcher", "IndexConfig", "MultiVectorIndex", "SearchParams",
           "Searcher", "TuneResult", "available_simd_levels", "builder", "expected_recall", "load", "num_bins_for",
           "simd_level", "time_limit", "tune", "__version__"]
