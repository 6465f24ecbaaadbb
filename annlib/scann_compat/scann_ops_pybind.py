"""ScaNN's pybind module, on annlib: `builder`, `create_searcher`, `load_searcher` and the
searcher's methods, with the signatures, defaults and results of
scann.scann_ops.py.scann_ops_pybind (ScaNN 1.4):

    from annlib.scann_compat import scann_ops_pybind
    searcher = scann_ops_pybind.builder(db, 10, "dot_product").tree(
        num_leaves=2000, num_leaves_to_search=100).score_ah(2).reorder(100).build()
    neighbors, distances = searcher.search_batched(queries)

Results are uint32 row numbers (or the build's docids) and float32 scores, -1 meaning
"the searcher's default" for a knob, as in ScaNN. Differences are listed in
annlib/scann_compat/__init__.py.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np

from .. import builder as _annlib_builder
from .. import defaults, indexes
from .._validate import check_num_threads
from ..io import load_index, save_index
from ..searcher import Searcher
from ..version import __version__
from . import _textproto, _translate, scann_builder

COMPAT_KIND = "scann_compat"


def _knob(value):
    """ScaNN's "use the default": -1 (or None)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"expected an integer, got {value!r}")
    return None if value == -1 else int(value)


class _Docids:
    """The docids of a searcher's points: annlib id i holds the point named names[i]."""

    def __init__(self, kind: type | None = None):
        self.names = np.empty(0, dtype=object)
        self.id_of: dict = {}
        self.kind = kind  # str or int: one for all the docids of a searcher

    def check(self, docids) -> None:
        for docid in docids:
            kind = str if isinstance(docid, str) else int if isinstance(docid, (int, np.integer)) and \
                not isinstance(docid, (bool, np.bool_)) else None
            if kind is None or (self.kind is not None and kind is not self.kind):
                raise TypeError(f"docids must be all str (or all int), got {docid!r}")
            self.kind = kind

    def assign(self, docids: list) -> tuple[np.ndarray, np.ndarray]:
        """(annlib ids, which are new) for docids: a known docid keeps its id, a new one
        gets the next."""
        self.check(docids)
        ids = np.empty(len(docids), dtype=np.int64)
        new = np.zeros(len(docids), dtype=bool)
        fresh = []
        for i, docid in enumerate(docids):
            known = self.id_of.get(docid)
            if known is None:
                known = len(self.names) + len(fresh)
                self.id_of[docid] = known
                fresh.append(docid)
                new[i] = True
            ids[i] = known
        if fresh:
            self.names = np.concatenate([self.names, _objects(fresh)])
        return ids, new

    def lookup(self, docids: list) -> np.ndarray:
        """annlib ids of docids that must all be held (KeyError names the first that is not)."""
        self.check(docids)
        ids = np.empty(len(docids), dtype=np.int64)
        seen = set()
        for i, docid in enumerate(docids):
            if docid not in self.id_of or docid in seen:
                raise KeyError(f"Docid not found: {docid} ")
            seen.add(docid)
            ids[i] = self.id_of[docid]
        return ids

    @classmethod
    def restored(cls, ids: np.ndarray, names: list, kind: type) -> "_Docids":
        """The docids a serialize() saved: names[i] names annlib id ids[i]."""
        docids = cls(kind)
        docids.names = np.full(int(ids.max()) + 1 if len(ids) else 0, None, dtype=object)
        docids.names[ids] = _objects(names)
        docids.id_of = dict(zip(names, ids.tolist()))
        return docids

    def forget(self, ids: np.ndarray) -> None:
        # The names stay: a search that ran before the delete may name its results after it
        # (ids are never reused, so a stale name is never another point's).
        for i in ids:
            del self.id_of[self.names[i]]

    def held(self) -> list:
        return list(self.id_of)


def _objects(values: list) -> np.ndarray:
    """A 1-D object array of values (np.array would make a 2-D one of equal-length tuples)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _as_rows(database, dim: int | None) -> np.ndarray:
    x = np.asarray(database, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    elif x.ndim > 2 and dim is not None and x.size % dim == 0:
        x = x.reshape(-1, dim)  # a list of (1, d) rows, as ScaNN accepts
    return x


@dataclasses.dataclass(frozen=True)
class _Served:
    searcher: Searcher   # the annlib index
    fields: dict         # the ScaNN config it follows (autopilot's as resolved now)
    plan: _translate.Plan


class ScannSearcher:
    """A ScaNN searcher over an annlib index (annlib_searcher); docids: the names of its
    points, or None (results are row numbers, and the searcher cannot be updated)."""

    def __init__(self, annlib_searcher: Searcher, fields: dict, dim: int, docids: _Docids | None,
                 plan: _translate.Plan | None = None):
        self._dim = dim
        plan = plan if plan is not None else _translate.plan(fields, dim, annlib_searcher.size())
        # What a search reads, swapped as a whole by a rebuild: a search never mixes two.
        self._served = _Served(annlib_searcher, fields, plan)
        self._docids = docids
        self._num_threads = 0
        self._changed_since_training = 0
        self._size_at_training = annlib_searcher.size()
        self._lock = threading.RLock()  # updates and rebuilds, one at a time
        self._leaf_bound = None  # (annlib index, its size, cumulative largest leaf slots): exhaustive leaves

    # ---- what the searcher is ---------------------------------------------------------

    @property
    def searcher(self) -> Searcher:
        """The annlib index underneath."""
        return self._served.searcher

    @property
    def _fields(self) -> dict:
        return self._served.fields

    @property
    def _plan(self) -> _translate.Plan:
        return self._served.plan

    @property
    def docids(self):
        """The docids held, or None when the searcher was built without them."""
        return None if self._docids is None else self._docids.held()

    def size(self) -> int:
        return self.searcher.size()

    def config(self) -> str:
        """The ScaNN text config this searcher follows (autopilot's as resolved now)."""
        return _textproto.render(self._fields)

    def set_num_threads(self, num_threads) -> None:
        """Threads of search_batched_parallel (0: all cores)."""
        self._num_threads = check_num_threads(num_threads)

    def reserve(self, num_datapoints) -> None:
        """Nothing to do: annlib's storage grows by itself."""

    def get_health_stats(self) -> dict:
        """annlib's health() of a partitioned index, with ScaNN's names where they have the same
        meaning (sum_partition_sizes; partition_weighted_avg_relative_imbalance, the squared
        coefficient of variation of the leaf sizes); {} for brute force."""
        health = getattr(self.searcher, "health", None)
        if health is None:
            return {}
        report = dict(health())
        report["sum_partition_sizes"] = report["points_in_leaves"]
        report["partition_weighted_avg_relative_imbalance"] = report["leaf_size_cv"] ** 2
        return report

    def initialize_health_stats(self) -> None:
        """Nothing to do: annlib keeps its health figures up to date."""

    # ---- search -----------------------------------------------------------------------

    def _rows(self, x, what: str, plan: _translate.Plan) -> np.ndarray:
        """x (float32 [n, d]) checked, with the zero columns the plan's blocks need."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._dim:
            raise ValueError(f"{what} must have shape (n, {self._dim}), got {x.shape}")
        if plan.padded_dim != self._dim:
            x = np.pad(x, ((0, 0), (0, plan.padded_dim - self._dim)))
        return x

    def _knobs(self, served, final_nn, pre_nn, leaves):
        """annlib's (k, pre_reorder, leaves) for ScaNN's arguments; k None: nothing held."""
        searcher = served.searcher
        config = searcher.config
        size = searcher.size()
        k = _knob(final_nn)
        k = served.plan.config.num_neighbors if k is None else k
        if k < 1:
            raise ValueError(f"final_num_neighbors must be > 0, got {k}")
        if size == 0:
            return None, None, None
        k = min(k, size)  # ScaNN returns what there is
        leaves = _knob(leaves)
        if config.tree is None:
            leaves = None
        elif leaves is not None:
            if leaves < 1:
                raise ValueError(f"leaves_to_search must be > 0, got {leaves}")
            leaves = min(leaves, config.tree.num_leaves)
        pre = _knob(pre_nn)
        if config.reorder is None:
            pre = None  # nothing is reordered: ScaNN ignores it
        elif served.plan.exhaustive_leaves:
            pre = self._exhaustive_depth(searcher, leaves or config.tree.num_leaves_to_search)
        elif pre is not None:
            pre = max(pre, k)
        return k, pre, leaves

    def _exhaustive_depth(self, searcher, leaves: int) -> int:
        """Candidates in the `leaves` largest leaves: rescoring that many rescores every point
        of any `leaves` leaves (tree + brute force)."""
        size = searcher.size()
        cached = self._leaf_bound
        if cached is None or cached[0] is not searcher or cached[1] != size:
            slots = np.sort(np.asarray(searcher.leaf_slots()))[::-1]
            cached = (searcher, size, np.cumsum(slots))
            self._leaf_bound = cached
        return max(1, int(cached[2][leaves - 1]))

    def _names(self, ids: np.ndarray):
        return self._docids.names[ids]

    def search(self, q, final_num_neighbors=-1, pre_reorder_num_neighbors=-1, leaves_to_search=-1):
        """Single-query search; -1 for a param uses the searcher's default value."""
        served = self._served
        k, pre, leaves = self._knobs(served, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search)
        if k is None:
            return (np.zeros(0, np.uint32) if self._docids is None else []), np.zeros(0, np.float32)
        ids, scores = served.searcher.search(self._rows(np.atleast_2d(q), "the query", served.plan), k, pre, leaves)
        found = ids >= 0
        ids, scores = ids[found], scores[found]
        if self._docids is None:
            return ids.astype(np.uint32), scores
        return self._names(ids).tolist(), scores

    def _search_batched(self, queries, final_nn, pre_nn, leaves, num_threads):
        served = self._served
        queries = self._rows(queries, "queries", served.plan)
        k, pre, leaves = self._knobs(served, final_nn, pre_nn, leaves)
        if k is None:
            ids, scores = np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        else:
            ids, scores = served.searcher.search_batched(queries, k, pre, leaves, num_threads=num_threads)
            width = int((ids >= 0).sum(axis=1).max()) if len(ids) else k
            ids, scores = ids[:, :width], scores[:, :width]
        missing = ids < 0  # ScaNN pads short rows with id 0 and nan
        scores = np.where(missing, np.float32(np.nan), scores)
        if self._docids is None:
            return np.where(missing, 0, ids).astype(np.uint32), scores
        names = self._names(np.where(missing, 0, ids))
        names[missing] = None
        return names.tolist(), scores

    def search_batched(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                       leaves_to_search=None):
        """Search for each row of queries, on one thread."""
        return self._search_batched(queries, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search, 1)

    def search_batched_parallel(self, queries, final_num_neighbors=None, pre_reorder_num_neighbors=None,
                                leaves_to_search=None, batch_size=256):
        """Search for each row of queries on set_num_threads() threads (all cores by default);
        annlib splits the work itself, so batch_size only has to be positive."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return self._search_batched(queries, final_num_neighbors, pre_reorder_num_neighbors, leaves_to_search,
                                    self._num_threads)

    # ---- updates ----------------------------------------------------------------------

    def upsert(self, docids, database, batch_size=1):
        """Insert or update datapoints (by docid) into the searcher; batch_size is accepted for
        ScaNN's sake (annlib adds a call's points in one batch)."""
        if not isinstance(docids, list):
            docids = [docids]
        x = _as_rows(database, self._dim)
        if len(docids) != x.shape[0]:
            raise ValueError("Number of items mismatch in docids and database vectors:"
                             f" {len(docids)} != {x.shape[0]}")
        if self._docids is None:
            raise ValueError("Cannot upsert because docids have not been specified when initializing.")
        if len(docids) == 0:
            return None
        last = {docid: i for i, docid in enumerate(docids)}  # a docid given twice: its last vector
        rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        with self._lock:
            x = self._rows(x[rows], "database", self._plan)
            ids, new = self._docids.assign(list(last))
            try:
                self.searcher.upsert(ids, x)
            except BaseException:
                self._docids.forget(ids[new])  # nothing was added
                raise
            self._after_update(len(ids))
        return None

    def delete(self, docids):
        """Delete datapoints (by docid); KeyError, and nothing deleted, when one is not held."""
        if not isinstance(docids, list):
            docids = [docids]
        if self._docids is None:
            raise ValueError("Cannot delete because docids have not been specified when initializing.")
        with self._lock:
            ids = self._docids.lookup(docids)
            if len(ids):
                self.searcher.delete(ids)
                self._docids.forget(ids)
                self._after_update(len(ids))
        return None

    def _after_update(self, count: int) -> None:
        """Retraining that ScaNN does on its own: incremental_threshold, and autopilot's
        ONLINE_INCREMENTAL mode."""
        self._changed_since_training += count
        threshold = self._plan.incremental_threshold
        autopilot = self._plan.autopilot
        if autopilot is not None and autopilot[0] == "ONLINE_INCREMENTAL":
            size = self.size()
            current = _translate.is_brute_force(self._fields)
            # A new build when the kind changes, or when another config fits and the size moved
            # by a quarter since the last one: geometric steps, so rebuilds cost O(1) per point.
            moved = not 0.8 <= (size + 1) / (self._size_at_training + 1) <= 1.25
            kind = _translate.is_brute_force(_translate.resolve_autopilot(self._fields, size, self._plan.padded_dim,
                                                                          current))
            if kind != current or moved:
                wanted = _translate.resolve_autopilot(self._fields, size, self._plan.padded_dim, current,
                                                      self._norm_stats())
                if kind != current or _textproto.render(wanted) != self.config():
                    self._rebuild(wanted)
        elif threshold is not None and self.searcher.config.tree is not None:
            size = max(self.size(), 1)
            limit = threshold if isinstance(threshold, int) else threshold * size
            if self._changed_since_training >= limit:
                self._retrain()

    def rebalance(self, config=None):
        """Retrains on the points held now: with `config` (ScaNN text), as that config; under
        autopilot, as autopilot chooses for the size now; else as built. Returns size()."""
        with self._lock:
            if config:
                self._rebuild(_textproto.parse(config))
            elif self._plan.autopilot is not None:
                self._rebuild(_translate.resolve_autopilot(self._fields, self.size(), self._plan.padded_dim,
                                                           _translate.is_brute_force(self._fields), self._norm_stats()))
            else:
                self._retrain()
        return self.size()

    def _held_ids(self) -> np.ndarray:
        if self._docids is None:
            return np.arange(self.searcher.size(), dtype=np.int64)
        return np.sort(np.fromiter(self._docids.id_of.values(), np.int64, len(self._docids.id_of)))

    def _norm_stats(self) -> tuple[float, float]:
        """annlib.defaults.norm_stats of the held points (on a sample)."""
        ids = self._held_ids()
        sample = ids[:: max(1, len(ids) // defaults.NORM_SAMPLE)]
        return defaults.norm_stats(self.searcher.vectors(sample) if len(sample) else sample.reshape(0, 1))

    def _retrain(self) -> None:
        if self.searcher.config.tree is not None:
            self.searcher.rebalance()
        self._changed_since_training = 0
        self._size_at_training = self.size()
        self._leaf_bound = None

    def _rebuild(self, fields: dict) -> None:
        """A new annlib index with `fields` over the points held now (read back from the index's
        copy of them: exact for float32, rounded for bfloat16 and int8)."""
        searcher = self.searcher
        ids = self._held_ids()
        vectors = searcher.vectors(ids)[:, :self._dim] if len(ids) else np.zeros((0, self._dim), np.float32)
        fresh = _build(fields, vectors, ids, 0)
        self._served = fresh._served
        self._changed_since_training = 0
        self._size_at_training = self.size()
        self._leaf_bound = None

    # ---- files ------------------------------------------------------------------------

    def serialize(self, artifacts_dir, relative_path=False):
        """Saves the searcher into directory artifacts_dir (created if missing; an existing
        one must be empty or hold a searcher saved before), atomically: the annlib index, the
        ScaNN config and the docids together. relative_path is accepted for ScaNN's sake
        (annlib's saves hold no absolute paths)."""
        with self._lock:
            state = {"config": self.config(), "dim": self._dim}
            arrays = {}
            if self._docids is not None:
                ids = np.fromiter(self._docids.id_of.values(), np.int64, len(self._docids.id_of))
                names = self._docids.held()
                state["docid_type"] = "int" if self._docids.kind is int else "str"
                arrays["docid_ids"] = ids
                arrays.update(_encode_docids(names, state["docid_type"]))
            config_json = json.dumps({"kind": COMPAT_KIND, "scann_compat": state}, indent=2, sort_keys=True)
            save_index(artifacts_dir, config_json, arrays, __version__, subindexes={"index": self.searcher})


def _encode_docids(names: list, kind: str) -> dict:
    """Docids as numeric arrays (annlib's files hold numbers only): ints as int64; strs as
    their UTF-8 bytes end to end, with each one's end offset."""
    if kind == "int":
        return {"docids": np.array(names, dtype=np.int64)}
    encoded = [str(name).encode("utf-8") for name in names]
    return {"docid_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
            "docid_ends": np.cumsum([len(e) for e in encoded], dtype=np.int64)}


def _decode_docids(arrays: dict, kind) -> list:
    if kind == "int":
        return np.asarray(arrays["docids"], dtype=np.int64).tolist()
    data = np.asarray(arrays["docid_bytes"], dtype=np.uint8).tobytes()
    ends = np.asarray(arrays["docid_ends"], dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    if len(ends) and (ends[-1] != len(data) or (ends < starts).any()):
        raise ValueError("the docids' offsets do not match their bytes")
    return [data[a:b].decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist())]


def _build(fields: dict, database: np.ndarray, ids: np.ndarray | None, training_threads: int,
           docids: _Docids | None = None) -> ScannSearcher:
    """A searcher for a concrete config over database (float32 [n, d]) with annlib ids `ids`."""
    n, dim = database.shape
    plan = _translate.plan(fields, dim, n)
    if plan.padded_dim != dim:
        database = np.pad(database, ((0, 0), (0, plan.padded_dim - dim)))
    config = plan.config
    # ScaNN takes a k above n (it returns what there is); annlib's builder does not.
    k = min(config.num_neighbors, n) if n else config.num_neighbors
    staged = _annlib_builder(database, k, config.distance_measure, ids=ids)
    if config.brute_force is not None:
        staged.score_brute_force(**dataclasses.asdict(config.brute_force))
    if config.tree is not None:
        staged.tree(**dataclasses.asdict(config.tree))
    if config.score_ah is not None:
        staged.score_ah(**dataclasses.asdict(config.score_ah))
    if config.reorder is not None:
        staged.reorder(**dataclasses.asdict(config.reorder))
    return ScannSearcher(staged.build(num_threads=training_threads), fields, dim, docids, plan)


def create_searcher(db, scann_config, training_threads=0, docids=None, **unused_kwargs):
    """A searcher over db (float32 [n, d]) as the ScaNN text config says; docids: a unique str
    per row (or None)."""
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2:
        raise ValueError(f"db must be 2-D, got shape {db.shape}")
    if docids is not None and len(docids) != db.shape[0]:
        raise ValueError(f"docid and database size mismatch: {len(docids)} != {db.shape[0]}.")
    training_threads = check_num_threads(training_threads)
    fields = _textproto.parse(scann_config)
    if "autopilot" in fields and not ("brute_force" in fields or "hash" in fields):
        fields = _translate.resolve_autopilot(fields, db.shape[0], db.shape[1], norms=defaults.norm_stats(db))
    names = None
    if docids is not None:
        names = _Docids()
        ids, _ = names.assign(list(docids))
        if len(names.id_of) != len(ids):
            raise ValueError("Duplicates found in docids.")
    return _build(fields, db, None, training_threads, names)


def builder(db, num_neighbors, distance_measure):
    """Starts a ScaNN builder over db (see scann_builder.ScannBuilder)."""

    class ScannBuilder(scann_builder.ScannBuilder):
        def create_config(self):
            """The config, with autopilot's choice for this database made concrete."""
            config = super().create_config()
            if self.params.get("autopilot") is not None:
                db = np.asarray(self.db, dtype=np.float32)
                config = _textproto.render(_translate.resolve_autopilot(_textproto.parse(config), *db.shape,
                                                                        norms=defaults.norm_stats(db)))
            return config

    def builder_lambda(db, config, training_threads, **kwargs):
        return create_searcher(db, config, training_threads, **kwargs)

    return ScannBuilder(db, num_neighbors, distance_measure).set_builder_lambda(builder_lambda)


def load_searcher(artifacts_dir, assets_backcompat_shim=True):
    """The searcher serialize() saved in artifacts_dir (annlib's format, checked on load;
    ScaNN's own serialized searchers cannot be read: rebuild them from the data)."""
    path = Path(artifacts_dir)
    if not path.is_dir():
        raise ValueError(f"{artifacts_dir} is not a directory.")
    if not (path / "manifest.json").exists() and (path / "scann_assets.pbtxt").exists():
        raise ValueError(f"{artifacts_dir} holds a searcher serialized by ScaNN itself; annlib cannot read "
                         "ScaNN's format: build the searcher again from the data")
    config_json, arrays, _ = load_index(path, mmap=True, verify=True)
    try:
        saved = json.loads(config_json)
        state = saved["scann_compat"]
        fields, dim = _textproto.parse(state["config"]), int(state["dim"])
        if saved.get("kind") != COMPAT_KIND:
            raise ValueError("not a scann_compat searcher")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{artifacts_dir} is not a searcher saved by annlib.scann_compat ({exc})") from None
    annlib_searcher = indexes.load_single(path / "index")
    docids = None
    if "docid_ids" in arrays:
        ids = np.asarray(arrays["docid_ids"], dtype=np.int64)
        names = _decode_docids(arrays, state.get("docid_type"))
        held = np.asarray(annlib_searcher.contains(ids)) if len(ids) else np.zeros(0, bool)
        if len(names) != len(ids) or len(ids) != annlib_searcher.size() or not held.all():
            raise ValueError(f"{artifacts_dir}: the docids do not match the index's points")
        docids = _Docids.restored(ids, names, int if state.get("docid_type") == "int" else str)
        if len(docids.id_of) != len(ids):
            raise ValueError(f"{artifacts_dir}: the docids hold duplicates")
    return ScannSearcher(annlib_searcher, fields, dim, docids)


__all__ = ["ScannSearcher", "builder", "create_searcher", "load_searcher"]
