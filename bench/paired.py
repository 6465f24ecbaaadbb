"""Paired re-measurement of a finished run's summary cells (annlib.benchmarks.paired):
annlib's and the best peer's winning points rebuilt in one process and timed in alternating
rounds, so a shared host's drift hits both alike.

    python bench/run.py ../shared/datasets/words-100k-384-angular.hdf5 -k 100 --output words-k100.jsonl
    python bench/paired.py ../shared/datasets/words-100k-384-angular.hdf5 words-k100.jsonl --rounds 8
"""
import sys

from annlib.benchmarks.paired import main

if __name__ == "__main__":
    sys.exit(main())
