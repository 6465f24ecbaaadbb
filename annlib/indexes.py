"""Loading a saved single-vector index (brute force or quantized) as the
searcher of its kind. Multi-vector indexes nest two of these; annlib.load
tells the kinds apart."""
from __future__ import annotations

from . import format_v1
from .config import IndexConfig
from .io import load_index
from .quantized import QuantizedSearcher
from .searcher import BruteForceSearcher, Searcher

KINDS = {"brute_force": BruteForceSearcher, "quantized": QuantizedSearcher}

# What a searcher's constructor raises on arrays that do not fit together.
DAMAGE = (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError)


def load_single(path, *, mmap: bool = True, verify: bool = True, loaded=None) -> Searcher:
    """The searcher saved at path; `loaded`: what annlib.io.load_index already read there."""
    config_json, arrays, manifest = loaded if loaded is not None else load_index(path, mmap=mmap, verify=verify)
    try:
        config = IndexConfig.from_json(config_json)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}/config.json is invalid: {exc}") from exc
    version = manifest["format_version"]
    try:
        searcher = KINDS[config.kind](config, arrays, format_version=version)
    except DAMAGE as exc:  # the arrays came from the files: any of these means they are damaged
        raise ValueError(f"{path}: saved arrays do not match the config ({exc})") from exc
    if version == 1:
        params = format_v1.tuned_params(path)
        if params is not None:
            try:
                searcher.set_default_params(params)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}/{format_v1.PARAMS_FILE} is invalid: {exc}") from exc
    return searcher
