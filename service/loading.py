"""Opening a saved index for the server, whatever its kind and wherever it lives.

An --index location is a directory (an index, or a sharded index whose coordinator this
server becomes, on the Ray cluster at RAY_ADDRESS or a local one), or
ray://HOST:PORT/PATH: the sharded index saved at PATH on the Ray cluster whose client
server listens at HOST:PORT (PATH, and --data-dir, on storage the cluster's nodes
share)."""
from __future__ import annotations

from pathlib import Path

import annlib

RAY_SCHEME = "ray://"


def parse_location(location) -> tuple[str | None, str]:
    """(Ray address or None, path) of an index location (see the module docstring)."""
    text = str(location)
    if not text.startswith(RAY_SCHEME):
        return None, text
    authority, slash, path = text[len(RAY_SCHEME):].partition("/")
    if not authority or not slash or not path:
        raise ValueError(f"expected ray://HOST:PORT/PATH (PATH the sharded index's directory), got {text!r}")
    return RAY_SCHEME + authority, "/" + path


def is_sharded_location(location) -> bool:
    """Whether the location names a sharded index (served by one coordinator process)."""
    from annlib.distributed import is_sharded

    address, path = parse_location(location)
    return address is not None or is_sharded(path)


def open_index(location, *, path=None):
    """The index at location: annlib.load's, or a sharded one (annlib.distributed; this
    process becomes its coordinator), ready to serve (a binned brute-force index has made
    its screen). path: open this directory instead (a snapshot of the location's index),
    on the location's Ray cluster."""
    from annlib.distributed import connect, is_sharded, load

    address, own_path = parse_location(location)
    path = Path(own_path if path is None else path)
    sharded = is_sharded(path)
    if address is not None:
        if not sharded:
            raise ValueError(f"{path} holds no sharded index (a ray:// location names one, at a path this "
                             "server and the cluster's nodes share)")
        connect(address)
    if sharded:
        return load(path)
    index = annlib.load(path)
    if isinstance(index, annlib.BruteForceSearcher):
        index.uses_screen()  # a binned index's screen is made now, not by the first request
    return index
