"""ann-benchmarks HDF5 layout: datasets train [n, d], test [nq, d], neighbors
[nq, K] (int), distances [nq, K] (float), and the file attribute `distance`
("angular", "euclidean", "dot", ...)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validate import METRIC_ALIASES

# ann-benchmarks metric name (or any alias annlib accepts) -> annlib distance_measure
METRIC_TO_MEASURE = METRIC_ALIASES


@dataclass
class Dataset:
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray | None
    distances: np.ndarray | None
    metric: str
    name: str = ""

    @property
    def distance_measure(self) -> str:
        """The annlib distance_measure that ranks like this dataset's metric."""
        try:
            return METRIC_TO_MEASURE[self.metric]
        except KeyError:
            raise ValueError(f"dataset metric {self.metric!r} has no annlib equivalent") from None


def _h5py():
    # h5py is an extra (annlib[datasets]): the index itself never reads HDF5.
    try:
        import h5py
    except ImportError:
        raise ImportError("HDF5 datasets need h5py: pip install 'annlib[datasets]'") from None
    return h5py


def read_hdf5(path, *, load_train: bool = True) -> Dataset:
    """Reads an ann-benchmarks HDF5 file into float32 train/test arrays."""
    h5py = _h5py()

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset file at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file: {exc}") from exc
    with f:
        for key in ("train", "test"):
            if key not in f:
                raise ValueError(f"{path} has no '{key}' dataset (not an ann-benchmarks file)")
        metric = f.attrs.get("distance", "euclidean")
        if isinstance(metric, bytes):
            metric = metric.decode()
        train = np.asarray(f["train"], dtype=np.float32) if load_train else None
        test = np.asarray(f["test"], dtype=np.float32)
        neighbors = np.asarray(f["neighbors"], dtype=np.int64) if "neighbors" in f else None
        distances = np.asarray(f["distances"], dtype=np.float32) if "distances" in f else None
    return Dataset(train, test, neighbors, distances, str(metric), path.stem)


def write_hdf5(path, train, test, neighbors, distances, metric: str) -> None:
    """Writes the ann-benchmarks layout (gzip-compressed arrays)."""
    h5py = _h5py()

    with h5py.File(path, "w") as f:
        f.attrs["distance"] = metric
        f.attrs["type"] = "dense"
        f.attrs["dimension"] = int(np.asarray(train).shape[1])
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=np.asarray(train, dtype=np.float32), compression="gzip")
        f.create_dataset("test", data=np.asarray(test, dtype=np.float32), compression="gzip")
        f.create_dataset("neighbors", data=np.asarray(neighbors, dtype=np.int32), compression="gzip")
        f.create_dataset("distances", data=np.asarray(distances, dtype=np.float32), compression="gzip")
