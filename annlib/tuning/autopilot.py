"""builder(...).autopilot(): the build annlib.defaults chooses for the data, then
annlib.tune for the target (with the given queries or a database sample). Registered
with the builder when this module is imported (the builder sits below tuning)."""
from __future__ import annotations

from ..builder import register_autopilot
from ..defaults import configure
from .tune import tune


def build_with_autopilot(staged, options: dict, num_threads: int, progress: bool):
    """staged: a fresh Builder over the same data; options: what autopilot() was given."""
    searcher = configure(staged, staged.distance_measure, target_recall=options["target_recall"]).build(
        num_threads, progress)
    if searcher.config.kind == "brute_force":
        searcher.tune_result = None  # exact: nothing to tune
        return searcher
    result = tune(searcher, options["queries"], target_recall=options["target_recall"],
                  max_latency_us=options["max_latency_us"], ground_truth=options["ground_truth"],
                  database=staged.database, num_threads=num_threads, progress=progress)
    searcher.set_default_params(result.params)
    searcher.tune_result = result
    return searcher


register_autopilot(build_with_autopilot)
