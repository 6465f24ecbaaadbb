"""Recall-QPS plots (PNG, Pareto frontier per algorithm) and the best-QPS Markdown table.

    python bench/plot.py bench-results/*.jsonl --out bench-results --readme README.md

Same as `annlib bench-plot ...`; the implementation is annlib.benchmarks.plot.
"""
import argparse
import sys

from annlib.benchmarks.plot import add_arguments, main_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main_from_args(parser.parse_args()))
