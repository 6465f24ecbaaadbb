"""ScaNN's builder class, on annlib: `ScannBuilder`, `ReorderType`, `IncrementalMode`, with
the signatures and defaults of scann.scann_ops.py.scann_builder (ScaNN 1.4).

Each stage records its arguments; create_config() checks them as ScaNN does and writes
a ScaNN text config (the same field names), which create_searcher() reads. What annlib
does with each setting is in annlib/scann_compat/__init__.py.
"""
from __future__ import annotations

import enum
import functools
import inspect
from typing import Optional

from . import _textproto


class ReorderType(enum.Enum):
    FLOAT32 = 1
    INT8 = 2
    BFLOAT16 = 3


class IncrementalMode(enum.Enum):
    NONE = 1
    ONLINE = 2
    ONLINE_INCREMENTAL = 3


_MEASURES = {"dot_product": "DotProductDistance", "squared_l2": "SquaredL2Distance"}
_REORDER_NAMES = {ReorderType.FLOAT32: "FLOAT32", ReorderType.INT8: "INT8", ReorderType.BFLOAT16: "BFLOAT16"}


def _stage(key: str):
    """Records a stage's arguments (by name, defaults filled in) under params[key]; a
    stage set twice raises, as in ScaNN."""

    def wrap(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def record(self, *args, **kwargs):
            if key in self.params:
                raise Exception(f"{key} has already been configured")
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            self.params[key] = arguments
            return self

        record.fields = method  # turns the recorded arguments into config fields
        return record

    return wrap


def _quantize(value) -> ReorderType:
    # ScaNN's shim for when `quantize` was a bool: True meant int8.
    if value is True:
        return ReorderType.INT8
    if value is False:
        return ReorderType.FLOAT32
    if not isinstance(value, ReorderType):
        raise ValueError(f"quantize must be a ReorderType or a bool, got {value!r}")
    return value


def _quantized_copy(quantize: ReorderType, threshold=None) -> dict:
    """The fixed_point / bfloat16 stanza of brute force and reordering."""
    stanza = {"enabled": quantize != ReorderType.FLOAT32}
    if threshold is not None:
        stanza["noise_shaping_threshold"] = float(threshold)
    return {"bfloat16" if quantize == ReorderType.BFLOAT16 else "fixed_point": stanza}


class ScannBuilder:
    """Records the stages of a ScaNN searcher; build() hands the config to builder_lambda."""

    def __init__(self, db, num_neighbors, distance_measure):
        self.params: dict = {}
        self.training_threads = 0
        self.builder_lambda = None
        self.db = db
        self.num_neighbors = num_neighbors
        self.distance_measure = distance_measure

    def set_n_training_threads(self, threads):
        self.training_threads = threads
        return self

    def set_builder_lambda(self, builder_lambda):
        """builder_lambda(db, config_text, training_threads, **kwargs) -> searcher, called by build()."""
        self.builder_lambda = builder_lambda
        return self

    def pca(self, reduction_dim: Optional[int] = None, pca_significance_threshold: Optional[float] = 0.80,
            pca_truncation_threshold: Optional[float] = 0.6):
        raise NotImplementedError("annlib.scann_compat does not project the data (pca): reduce the "
                                  "dimension before building (e.g. sklearn.decomposition.PCA)")

    def truncate(self, reduction_dim):
        raise NotImplementedError("annlib.scann_compat does not project the data (truncate): pass "
                                  "db[:, :reduction_dim] and queries[:, :reduction_dim] instead")

    def upper_tree(self, num_leaves: int, num_leaves_to_search: int, avq: float = float("nan"),
                   soar_lambda: Optional[float] = None, overretrieve_factor=None,
                   scoring_mode: ReorderType = ReorderType.INT8,
                   anisotropic_quantization_threshold=float("nan")):
        raise NotImplementedError("annlib has one level of leaves: use tree() alone (annlib scores every "
                                  "centroid with an int8 screen and exact rescoring)")

    @_stage("tree")
    def tree(self, num_leaves, num_leaves_to_search, training_sample_size=100000, min_partition_size=50,
             training_iterations=12, spherical=False, quantize_centroids=False, random_init=True,
             incremental_threshold=None, avq=None, soar_lambda=None, overretrieve_factor=None):
        """Partitioning (k-means leaves); soar_lambda spills each point into a second leaf."""
        if avq is not None and self.distance_measure != "dot_product":
            raise ValueError("AVQ only applies to dot product distance.")
        if soar_lambda is not None and self.distance_measure != "dot_product":
            raise ValueError("SOAR requires dot product distance.")
        fields = {
            "num_children": num_leaves,
            "min_cluster_size": min_partition_size,
            "max_clustering_iterations": training_iterations,
            "single_machine_center_initialization":
                "RANDOM_INITIALIZATION" if random_init else "DEFAULT_KMEANS_PLUS_PLUS",
            "partitioning_distance": {"distance_measure": "SquaredL2Distance"},
            "query_spilling": {"spilling_type": "FIXED_NUMBER_OF_CENTERS", "max_spill_centers": num_leaves_to_search},
            "expected_sample_size": training_sample_size,
            "query_tokenization_distance_override": {"distance_measure": _MEASURES[self.distance_measure]},
            "partitioning_type": "SPHERICAL" if spherical else "GENERIC",
            "query_tokenization_type": "FIXED_POINT_INT8" if quantize_centroids else "FLOAT",
        }
        if isinstance(incremental_threshold, bool):
            raise ValueError(f"incremental_threshold must be an int, a float or None, got {incremental_threshold!r}")
        if isinstance(incremental_threshold, int):
            fields["incremental_training_config"] = {"number_of_datapoints": incremental_threshold}
        elif isinstance(incremental_threshold, float):
            fields["incremental_training_config"] = {"fraction": incremental_threshold}
        if avq is not None:
            fields["avq"] = float(avq)
        if soar_lambda is not None:
            spilling = {"spilling_type": "TWO_CENTER_ORTHOGONALITY_AMPLIFIED",
                        "orthogonality_amplification_lambda": float(soar_lambda)}
            if overretrieve_factor is not None:
                spilling["overretrieve_factor"] = float(overretrieve_factor)
            fields["database_spilling"] = spilling
        return {"partitioning": fields}

    @_stage("score_ah")
    def score_ah(self, dimensions_per_block, anisotropic_quantization_threshold=float("nan"),
                 training_sample_size=100000, min_cluster_size=100, hash_type="lut16", training_iterations=10,
                 residual_quantization=None, n_dims=None, projection=None):
        """Asymmetric hashing: 16 centers per block of dimensions_per_block dims ("lut16"),
        or 256 ("lut256"; annlib stores those as two 4-bit codes of half the dims each)."""
        if hash_type not in ("lut16", "lut256"):
            raise ValueError("hash_type must be one of ['lut16', 'lut256']")
        n_dims = self.db.shape[1] if n_dims is None else n_dims
        if residual_quantization is None:
            residual_quantization = "tree" in self.params and self.distance_measure == "dot_product"
        full_blocks, partial = divmod(n_dims, dimensions_per_block)
        blocks = [{"num_blocks": full_blocks, "num_dims_per_block": dimensions_per_block}]
        if partial:
            blocks.append({"num_blocks": 1, "num_dims_per_block": partial})
            chunking = {"input_dim": n_dims, "projection_type": "VARIABLE_CHUNK", "variable_blocks": blocks}
        else:
            chunking = {"input_dim": n_dims, "projection_type": "CHUNK", **blocks[0]}
        threshold = anisotropic_quantization_threshold
        return {"hash": {"asymmetric_hash": {
            "lookup_type": "INT8_LUT16" if hash_type == "lut16" else "INT8",
            "use_residual_quantization": bool(residual_quantization),
            "quantization_distance": {"distance_measure": "SquaredL2Distance"},
            "num_clusters_per_block": 16 if hash_type == "lut16" else 256,
            "projection": chunking,
            "noise_shaping_threshold": float("nan") if threshold is None else float(threshold),
            "expected_sample_size": training_sample_size,
            "max_clustering_iterations": training_iterations,
        }}}

    @_stage("score_bf")
    def score_brute_force(self, quantize=ReorderType.FLOAT32):
        """Exact scoring (int8 or bfloat16 copies when quantize says so); after tree(), of
        the points in the searched leaves."""
        return {"brute_force": _quantized_copy(_quantize(quantize))}

    @_stage("reorder")
    def reorder(self, reordering_num_neighbors: int, quantize: ReorderType = ReorderType.FLOAT32,
                anisotropic_quantization_threshold: float = float("nan")):
        """Rescore the best reordering_num_neighbors candidates from a float32/bfloat16/int8 copy."""
        return {"exact_reordering": {"approx_num_neighbors": reordering_num_neighbors,
                                     **_quantized_copy(_quantize(quantize), anisotropic_quantization_threshold)}}

    @_stage("autopilot")
    def autopilot(self, mode=IncrementalMode.NONE, quantize=ReorderType.FLOAT32):
        """Let the searcher choose its stages from the data's size and dimension."""
        if not isinstance(mode, IncrementalMode):
            raise ValueError(f"mode must be an IncrementalMode, got {mode!r}")
        return {"autopilot": {"tree_ah": {"incremental_mode": mode.name,
                                          "reordering_dtype": _REORDER_NAMES[_quantize(quantize)]}}}

    def _fields(self, key: str) -> dict:
        return getattr(self, _STAGE_METHODS[key]).fields(self, **self.params[key])

    def create_config(self):
        """The ScaNN text config of the recorded stages."""
        measure = _MEASURES.get(self.distance_measure)
        if measure is None:
            raise ValueError(f"distance_measure must be one of {list(_MEASURES)}")
        fields = {"num_neighbors": self.num_neighbors, "distance_measure": {"distance_measure": measure}}
        if "autopilot" in self.params:
            fields.update(self._fields("autopilot"))  # autopilot chooses everything else
            return _textproto.render(fields)
        if "tree" in self.params:
            fields.update(self._fields("tree"))
        has_ah, has_bf = "score_ah" in self.params, "score_bf" in self.params
        if has_ah == has_bf:
            raise ValueError("Exactly 1 of score_ah or score_brute_force must be set")
        fields.update(self._fields("score_ah" if has_ah else "score_bf"))
        if "reorder" in self.params:
            fields.update(self._fields("reorder"))
        return _textproto.render(fields)

    def build(self, docids=None, **kwargs):
        """The searcher: builder_lambda(db, create_config(), training_threads, docids=docids, **kwargs).
        docids (a list of unique str, one per database row) name the points in results and
        in upsert() and delete(); without them the searcher cannot be updated."""
        if self.builder_lambda is None:
            raise Exception("build() called but no builder lambda was set.")
        return self.builder_lambda(self.db, self.create_config(), self.training_threads, docids=docids, **kwargs)


_STAGE_METHODS = {"tree": "tree", "score_ah": "score_ah", "score_bf": "score_brute_force", "reorder": "reorder",
                  "autopilot": "autopilot"}

__all__ = ["IncrementalMode", "ReorderType", "ScannBuilder"]
