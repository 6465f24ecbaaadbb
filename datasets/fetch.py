"""Downloads the standard ann-benchmarks datasets into ANNLIB_DATA_DIR.

fetch(name) returns the local path, downloading with a progress bar only when
the file is not there yet. The download goes to a temporary file renamed into
place when complete, so an interrupted download never looks like a dataset.
Offline, it fails with a message that says where to put the file by hand.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .._progress import progress_bar

DEFAULT_BASE_URL = "http://ann-benchmarks.com"
DATASETS = (
    "deep-image-96-angular", "fashion-mnist-784-euclidean", "gist-960-euclidean", "glove-25-angular",
    "glove-50-angular", "glove-100-angular", "glove-200-angular", "kosarak-jaccard", "mnist-784-euclidean",
    "nytimes-256-angular", "sift-128-euclidean", "lastfm-64-dot",
)


def data_dir() -> Path:
    """ANNLIB_DATA_DIR, or ~/.cache/annlib/datasets."""
    env = os.environ.get("ANNLIB_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "annlib" / "datasets"


def fetch(name: str, *, base_url: str | None = None, timeout: float = 30.0, progress: bool | None = None) -> Path:
    """Local path of ann-benchmarks dataset `name` (e.g. "glove-100-angular"); downloads it
    once. Offline: ConnectionError saying where to put the file by hand."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    target = data_dir() / f"{name}.hdf5"
    if target.is_file():
        return target
    base = (base_url or os.environ.get("ANNLIB_DATASET_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{name}.hdf5"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".hdf5.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, progress=progress, unit="B", unit_scale=True, desc=name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        raise ConnectionError(f"could not download {url} ({exc}); without a network, copy {name}.hdf5 "
                              f"into {target.parent} (or set ANNLIB_DATA_DIR) and try again") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target
