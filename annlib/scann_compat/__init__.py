"""ScaNN's Python API on annlib's engine: change one import and ScaNN code runs.

    from annlib.scann_compat import scann_ops_pybind      # was: from scann.scann_ops.py import ...
    from annlib.scann_compat import scann_builder         # ReorderType, IncrementalMode

scann_ops_pybind.builder(db, k, "dot_product" | "squared_l2") takes ScaNN's stages with
ScaNN's arguments and defaults (tree, score_ah, score_brute_force, reorder, autopilot,
set_n_training_threads, create_config, build(docids=...)); the searcher answers search,
search_batched, search_batched_parallel, upsert, delete, rebalance, serialize, size, config,
set_num_threads, reserve, get_health_stats and docids as ScaNN's does: uint32 row numbers or
docids, -1 for "the default", KeyError for an unknown docid, fewer results than asked when
the index holds fewer points. annlib's own API (annlib.builder) is unchanged by this.

How each ScaNN setting is carried out (docs/scann_compat.md has the full table):
  tree(...)                 annlib's k-means leaves; spherical, SOAR (soar_lambda,
                            overretrieve_factor), training_sample_size, training_iterations,
                            random_init as ScaNN. min_partition_size and quantize_centroids
                            are accepted: annlib reseeds empty leaves and always scores
                            centroids with an int8 screen and exact rescoring. avq is not
                            applied (a CompatWarning says so).
                            incremental_threshold retrains (rebalance) once that many points
                            (or that share) changed.
  score_ah(b, T, ...)       4-bit AH, b dims per block, anisotropic threshold T (nan = plain).
                            A last partial block is made whole by zero columns (scores are
                            unchanged). hash_type="lut256" (8-bit codes over b dims) is stored
                            as 4-bit codes over b/2 dims: the same bytes, scanned by LUT16.
  score_brute_force(q)      exact scoring in float32, or int8 (q=True / INT8) or bfloat16.
                            After tree(): exact scoring of every point in the searched
                            leaves (annlib rescores all of their candidates).
  reorder(n, quantize)      exact rescoring from a float32, int8 or bfloat16 copy; the int8
                            copy's anisotropic threshold is not applied.
  autopilot(mode, quantize) annlib.defaults chooses from the size and dimension (brute force
                            below 20,000 points, else tree + AH + reorder in `quantize`);
                            rebalance() chooses again; ONLINE_INCREMENTAL also does so by
                            itself when the size crosses the threshold or doubles/halves.
  pca, truncate, upper_tree NotImplementedError (project the data before building).
  serialize / load_searcher annlib's checked, atomic format (not ScaNN's files: a directory
                            ScaNN serialized cannot be read; build it again from the data).
"""
from . import scann_builder, scann_ops_pybind
from ._translate import CompatWarning

__all__ = ["CompatWarning", "scann_builder", "scann_ops_pybind"]
