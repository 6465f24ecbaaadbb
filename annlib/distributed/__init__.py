"""annlib.distributed: a quantized index sharded over Ray actors, searched like one
index (the same results), for data beyond one machine. Needs the extra
annlib[distributed] (Ray).

    import annlib, annlib.distributed
    sharded = annlib.distributed.build(
        annlib.builder(data, 10, "dot_product").tree(2000, 40).score_ah(2, 0.2).reorder(200),
        num_shards=4)
    ids, scores = sharded.search_batched(queries)
    sharded.save("/shared/index")
    sharded = annlib.distributed.load("/shared/index")

docs/distributed.md: how shards are cut, routed and merged, failures, sizing a cluster.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._ray import connect
from .building import build
from .routing import MODES
from .searcher import FORMAT_KIND, ShardedFilter, ShardedSearcher, ShardUnavailableError, load


def is_sharded(path) -> bool:
    """Whether directory `path` holds a saved sharded index (annlib.load refuses those)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("kind") == FORMAT_KIND


__all__ = ["MODES", "ShardUnavailableError", "ShardedFilter", "ShardedSearcher", "build", "connect", "is_sharded",
           "load"]
