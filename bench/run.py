"""Side-by-side benchmark of annlib and its peers on one or more datasets.

    python bench/run.py ../shared/datasets/words-100k-384-angular.hdf5
    python bench/run.py ../shared/datasets/sift-150k-128-euclidean.hdf5 --algorithms annlib,faiss-ivfpqfs
    python bench/plot.py bench-results/*.jsonl --readme README.md

Same as `annlib bench ...`; the implementation is annlib.benchmarks.runner
(installed with the package). Results are appended to
bench-results/<dataset>.jsonl; peers that are not installed are skipped with a note.
"""
import argparse
import sys

from annlib.benchmarks.runner import add_arguments, main_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main_from_args(parser.parse_args()))
