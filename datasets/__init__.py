"""annlib.datasets: ann-benchmarks HDF5 files, fvecs/ivecs/bvecs, exact ground truth, downloads.

Installed as the subpackage annlib.datasets (a top-level `datasets` module
would shadow Hugging Face's).
"""
from .bundled import sift_20k
from .fetch import DATASETS, data_dir, fetch
from .groundtruth import ground_truth
from .hdf5 import Dataset, read_hdf5, write_hdf5
from .vecs import read_bvecs, read_fvecs, read_ivecs, write_fvecs, write_ivecs

__all__ = ["DATASETS", "Dataset", "data_dir", "fetch", "ground_truth", "read_bvecs", "read_fvecs", "read_hdf5",
           "read_ivecs", "sift_20k", "write_fvecs", "write_hdf5", "write_ivecs"]
