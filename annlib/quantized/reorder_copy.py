"""How the reorder copy of a float32 reorder (exact rescoring) is stored.

Data whose every value is exactly a bfloat16 (integers up to 256 in magnitude, as in SIFT
and other byte-valued descriptors, or any value with at most 8 significant bits) loses
nothing in bfloat16: a build keeps the copy in half the bytes, and rescoring gives
bit-identical scores (the kernel widens each stored value to the same float32 and sums in
the same order). The config still says float32, since that is what the results are. An
upsert of a value bfloat16 cannot hold first widens the copy to float32 (exact), so the
index stays exact; saves and loads keep whichever copy the index holds (the rows array's
own dtype says which). An index trained empty (Builder.train(), a sharded build's
skeleton) holds its copy in bfloat16 when its training rows fit it, so that an index
filled by upserts of such data is the index a build of it makes.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from ..config import IndexConfig
from ..dense_layout import stored_as, widen

_CHUNK_ROWS = 65_536  # rows checked at a time (bounded temporary memory)


def stored_dtype(config: IndexConfig, arrays: dict) -> str:
    """The dtype the reorder copy in arrays is held in ('' without a reorder stage); a
    float32 reorder may be held in bfloat16, nothing else may differ from the config."""
    if config.reorder is None:
        return ""
    rows = arrays.get("rows")
    stored = stored_as(rows) if rows is not None else config.reorder.dtype
    asked = config.reorder.dtype
    if stored != asked and not (asked == "float32" and stored == "bfloat16"):
        held = "of an unknown type" if stored is None else f"in {stored}"
        raise ValueError(f"the index's reorder rows are held {held}, but its config asks for {asked}")
    return stored


def exact_in_bfloat16(x: np.ndarray) -> bool:
    """Whether every value of float32 x is a bfloat16 (its low 16 bits are zero)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1).view(np.uint32)
    return all(not np.any(bits[i:i + _CHUNK_ROWS] & 0xFFFF) for i in range(0, len(bits), _CHUNK_ROWS))


def rows_dtype_for(config: IndexConfig, x: np.ndarray) -> str | None:
    """The dtype a build packs x's reorder rows in: bfloat16 for a float32 reorder of data
    bfloat16 holds exactly, else the config's (None without a reorder stage)."""
    if config.reorder is None:
        return None
    asked = config.reorder.dtype
    return "bfloat16" if asked == "float32" and x.size and exact_in_bfloat16(x) else asked


def rows_dtype_to_add(config: IndexConfig, arrays: dict, x: np.ndarray) -> str | None:
    """The dtype to pack the reorder rows of points x in for an index holding `arrays`:
    the copy's own when it can hold x exactly, else None (the config's: the caller's index
    widens its copy first, as upserts of such points do)."""
    if config.reorder is None:
        return None
    held = stored_dtype(config, arrays)
    return held if held == config.reorder.dtype or exact_in_bfloat16(x) else None


def narrowed(arrays: dict, dim: int, dtype: str, squared_l2: bool, num_threads: int = 0) -> dict:
    """arrays with their float32 reorder copy (held in float32 or bfloat16) repacked in
    `dtype` (bfloat16 or int8): half or a quarter of the float32 bytes re-ranked, the
    scores then those of the narrower copy (the rest shared)."""
    rows = np.asarray(arrays["rows"])
    if stored_as(rows) == "bfloat16":
        rows = widen(rows, "bfloat16")
    packed = _core.pack_rows(np.ascontiguousarray(rows[:, :dim], dtype=np.float32), dtype, squared_l2, num_threads)
    return {**{k: v for k, v in arrays.items() if k not in ("row_scale", "row_offset")}, **packed}


def widened(arrays: dict) -> dict:
    """arrays with a bfloat16 reorder copy widened to float32 (exact; the rest shared)."""
    return dict(arrays, rows=widen(np.asarray(arrays["rows"]), "bfloat16"))
