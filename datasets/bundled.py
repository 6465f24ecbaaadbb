"""The dataset inside the package: a SIFT-20k subset of sift-128-euclidean (20,000 real
SIFT descriptors, 500 queries, their exact 100 nearest neighbours; 2 MB), for the demo,
the README's examples and quick experiments with no download."""
from __future__ import annotations

from importlib import resources

import numpy as np

from .hdf5 import Dataset


def sift_20k() -> Dataset:
    """train float32 [20000, 128], test float32 [500, 128], neighbors int64 [500, 100]
    (exact, squared L2), metric "euclidean"."""
    with resources.files("annlib.data").joinpath("sift-20k.npz").open("rb") as f:
        data = np.load(f)
        return Dataset(data["train"].astype(np.float32), data["test"].astype(np.float32),
                       data["neighbors"].astype(np.int64), None, "euclidean", "sift-20k")
