"""Indexes saved in format version 1 (annlib 0.1.0), migrated explicitly.

They load as they are and answer exactly as they did (the engine follows
version 1's rules: csrc/index/index_format.h). Two things differ from
version 2:
  - tuned search defaults were kept in search_params.json beside the index
    (`annlib tune --write`); they are applied on load, and a save keeps them
    in config.json, as version 2 does;
  - indexes saved before int8 centroid screening (a tree's float32 centroid
    panels, no centroid_rows) or before brute-force norms lack arrays that
    version 2 requires: a save computes them from the arrays there are
    (upgrade_arrays), and the index saved is a version 2 index.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _core
from .params import SearchParams

PARAMS_FILE = "search_params.json"


def tuned_params(path) -> SearchParams | None:
    """The SearchParams a version 1 index stored beside it, if any (ValueError when damaged)."""
    params_path = Path(path) / PARAMS_FILE
    if not params_path.exists():
        return None
    try:
        return SearchParams.from_json(params_path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{params_path} is invalid: {exc}") from exc


def upgrade_arrays(kind: str, arrays: dict, squared_l2: bool, dtype: str | None = None) -> dict:
    """The arrays of a version 1 index with what version 2 requires added."""
    arrays = dict(arrays)
    if kind == "quantized" and "centroid_rows" not in arrays:
        centroids = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        packed = _core.pack_dense(centroids, "int8", squared_l2)
        rows = _core.pack_rows(centroids, "float32", squared_l2)
        arrays["centroid_panels"] = packed["panels"]
        arrays.update({f"centroid_{key}": packed[key] for key in ("bias", "scale", "offset", "sums", "scaled_sums")})
        arrays["centroid_rows"] = rows["rows"].ravel()
        arrays["centroid_row_bias"] = rows["row_bias"]
    if kind == "brute_force" and dtype == "float32" and "norms" not in arrays:
        n, dim = (int(v) for v in np.asarray(arrays["meta"]))
        width = _core.PANEL_WIDTH
        panels = np.asarray(arrays["panels"]).view(np.float32).reshape(-1, dim, width)
        x = panels.transpose(0, 2, 1).reshape(-1, dim)[:n]  # float32 panels: the points, transposed
        norms = np.zeros(len(panels) * width, np.float32)
        norms[:n] = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        arrays["norms"] = norms
    return arrays
