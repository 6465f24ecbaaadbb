"""Opening a saved index for the server, whatever its kind."""
from __future__ import annotations

from pathlib import Path

import annlib


def open_index(path: Path):
    """The index saved at path: annlib.load's, or a sharded one (annlib.distributed: this
    process becomes its coordinator, on the Ray cluster at RAY_ADDRESS or a local one)."""
    from annlib.distributed import is_sharded, load

    return load(path) if is_sharded(path) else annlib.load(path)
