"""Points in and out of brute force's packed arrays (csrc/kernels/dense_scan.h).

Panels hold 32 points each as a stack of 128-byte rows, 4 bytes per point per
row, whatever the dtype; every other array holds one value per point slot. So
a point's packed form is the same few bytes of every row plus its per-point
values, and an index with points added or removed is made by gathering points
from the old arrays and the freshly packed new ones: nothing is re-quantized,
so a bfloat16 or int8 point scores the same before and after an update.
"""
from __future__ import annotations

import numpy as np

from . import _core

PANEL_WIDTH = 32
LANE_BYTES = 4
# Per-point arrays of the packed format (int8 has the last four, float32 norms).
PER_POINT = ("bias", "norms", "scale", "offset", "scaled_sums", "sums")


def pack(x: np.ndarray, dtype: str, squared_l2: bool, num_threads: int, ids: np.ndarray | None = None) -> dict:
    """The packed arrays of x (float32 [n, d], already normalized for cosine)."""
    packed = _core.pack_dense(x, dtype, squared_l2, num_threads)
    packed["meta"] = np.array(x.shape, dtype=np.int64)
    if ids is not None:
        packed["ids"] = ids
    return packed


def _point_bytes(panels: np.ndarray) -> np.ndarray:
    """[panels, rows * 128] -> [panels * 32, rows * 4]: each point's bytes, in row order."""
    num_panels, panel_bytes = panels.shape
    rows = panel_bytes // (PANEL_WIDTH * LANE_BYTES)
    by_point = np.asarray(panels).reshape(num_panels, rows, PANEL_WIDTH, LANE_BYTES).transpose(0, 2, 1, 3)
    return by_point.reshape(num_panels * PANEL_WIDTH, rows * LANE_BYTES)


def _panels(points: np.ndarray) -> np.ndarray:
    """Inverse of _point_bytes."""
    count, point_bytes = points.shape
    rows = point_bytes // LANE_BYTES
    grouped = points.reshape(count // PANEL_WIDTH, PANEL_WIDTH, rows, LANE_BYTES).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(grouped).reshape(count // PANEL_WIDTH, rows * PANEL_WIDTH * LANE_BYTES)


def gather(parts: list[tuple[dict, np.ndarray]], dim: int, dtype: str, squared_l2: bool) -> dict:
    """Packed arrays holding, in order, the points `rows` of each (arrays, rows) part,
    with user ids; the slots past the last point are padding, as the packer writes it."""
    # The packed arrays of one point: its slots 1..31 are padding slots.
    padding = _core.pack_dense(np.zeros((1, dim), np.float32), dtype, squared_l2, 1)
    n = sum(len(rows) for _, rows in parts)
    slots = -(-n // PANEL_WIDTH) * PANEL_WIDTH
    pad = slots - n
    out = {"meta": np.array([n, dim], dtype=np.int64)}
    out["panels"] = _panels(np.concatenate(
        [_point_bytes(arrays["panels"])[rows] for arrays, rows in parts]
        + [np.repeat(_point_bytes(padding["panels"])[1:2], pad, axis=0)]))
    for name in PER_POINT:
        if name in padding:
            out[name] = np.concatenate([np.asarray(arrays[name])[rows] for arrays, rows in parts]
                                       + [np.repeat(np.asarray(padding[name])[1:2], pad)])
    out["ids"] = np.concatenate([ids_of(arrays)[rows] for arrays, rows in parts]).astype(np.int64)
    return out


_STORED = {"float32": np.float32, "bfloat16": np.uint16, "int8": np.int8}


def stored_as(values: np.ndarray) -> str | None:
    """The dtype name (float32, bfloat16, int8) whose storage type values have; None for another."""
    return next((name for name, kind in _STORED.items() if np.asarray(values).dtype == kind), None)


def widen(values: np.ndarray, dtype: str, scale=None, offset=None) -> np.ndarray:
    """float32 [n, d] of stored values [n, d]: float32 as they are, bfloat16 (uint16 bits)
    widened, int8 codes times their row's scale plus its offset (scale, offset: [n]). The
    brute-force panels and the quantized index's reorder rows store points the same ways."""
    if dtype == "float32":
        return np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return (values.astype(np.float32) * np.asarray(scale)[:, None] + np.asarray(offset)[:, None]).astype(np.float32)


def unpack(arrays: dict, rows: np.ndarray, dim: int, dtype: str) -> np.ndarray:
    """The vectors at point slots `rows` as the packed copy holds them: float32 [len(rows), dim]
    (exact for float32; bfloat16 and int8 give back their rounded values)."""
    values = _point_bytes(arrays["panels"])[rows].view(_STORED[dtype])[:, :dim]
    if dtype != "int8":
        return widen(values, dtype)
    return widen(values, dtype, np.asarray(arrays["scale"])[rows], np.asarray(arrays["offset"])[rows])


def ids_of(arrays: dict) -> np.ndarray:
    """User id of each point (0..n-1 when the arrays carry none)."""
    if "ids" in arrays:
        return np.asarray(arrays["ids"])
    return np.arange(int(np.asarray(arrays["meta"])[0]), dtype=np.int64)
