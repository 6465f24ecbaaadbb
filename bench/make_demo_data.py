"""Regenerates annlib/data/sift-20k.npz, the small real dataset the package ships
for `annlib demo`: the first 20,000 train and 500 test SIFT descriptors of the
shared dev set (integers 0..255, stored as uint8) with exact squared-L2 top-100
ground truth computed in float64 NumPy.

    python bench/make_demo_data.py ../shared/datasets/sift-150k-128-euclidean.hdf5
"""
import sys

import h5py
import numpy as np


def main(src):
    with h5py.File(src, "r") as f:
        train = np.asarray(f["train"][:20000])
        test = np.asarray(f["test"][:500])
    assert np.array_equal(train, np.round(train)) and train.min() >= 0 and train.max() <= 255
    t64, q64 = train.astype(np.float64), test.astype(np.float64)
    d2 = (q64**2).sum(1)[:, None] - 2 * q64 @ t64.T + (t64**2).sum(1)[None, :]
    order = np.lexsort((np.broadcast_to(np.arange(len(train)), d2.shape), d2), axis=1)[:, :100]
    np.savez_compressed("annlib/data/sift-20k.npz", train=train.astype(np.uint8), test=test.astype(np.uint8),
                        neighbors=order.astype(np.int32), metric=np.array("euclidean"),
                        source=np.array("first 20k train / 500 test rows of sift-150k-128-euclidean"))


if __name__ == "__main__":
    main(sys.argv[1])
