"""What a user gets from autopilot() against the best peer of a finished run
(annlib.benchmarks.autopilot_check): for each recall target, `builder(...).autopilot(target_recall=t,
exact_scores=False)` built on the train rows alone, its recall@k on the test queries, and its QPS
against the run's fastest peer point at that target, rebuilt and timed in alternating rounds.

    python bench/autopilot_vs_peers.py ../shared/datasets/words-100k-384-angular.hdf5 \\
        docs/benchmarks/words-100k-384-angular-k100.jsonl --rounds 5
"""
import sys

from annlib.benchmarks.autopilot_check import main

if __name__ == "__main__":
    sys.exit(main())
