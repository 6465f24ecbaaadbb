"""The RPCs. Each decodes its request, calls the library, encodes the answer;
errors become status codes (codec.ServiceError, ValueError/TypeError from the
library's own checks -> INVALID_ARGUMENT)."""
from __future__ import annotations

import functools
import logging
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
import numpy as np

import annlib

from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc

from .batcher import SearchBatcher
from .codec import ServiceError, from_matrix, ids_of, invalid, option, to_neighbors
from .durable import WriterFailed
from .registry import Hosted, IndexRegistry

log = logging.getLogger("annlib.service")

DEFAULT_NUM_CANDIDATES = 100
_BATCH_CHUNK = 1024      # queries searched between two deadline checks
_BYTES_PER_RESULT = 16   # id + score + framing, to refuse oversized answers early


def rpc_method(fn):
    """Maps exceptions to status codes, refuses work past the deadline, and stops library
    calls when the deadline passes mid-call (annlib.time_limit: they stop between work
    items and raise TimeoutError, so an abandoned call does not keep the cores busy)."""

    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            remaining = context.time_remaining()
            check_deadline(remaining)
            with annlib.time_limit(remaining):
                return fn(self, request, context)
        except TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the work was done")
        except ServiceError as exc:
            context.abort(exc.code, exc.message)
        except (ValueError, TypeError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except MemoryError:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the server ran out of memory for this request")
        except WriterFailed as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    return wrapper


def wait_timeout(context) -> float | None:
    """The seconds a call may still wait (None: no deadline; gRPC reports years then)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 86400 else max(remaining, 0.0)


def check_deadline(remaining: float | None) -> None:
    """Refuses work whose deadline (context.time_remaining(): seconds, None = none) has passed."""
    if remaining is not None and remaining <= 0:
        raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the work was done")


def index_info(hosted: Hosted) -> pb.IndexInfo:
    """What is served, read from the objects serving it (not from the files on disk)."""
    index, searcher = hosted.index, hosted.searcher
    defaults = searcher.search_defaults
    info = pb.IndexInfo(name=hosted.name, path=hosted.path, size=index.size(), dim=searcher.dim,
                        distance_measure=searcher.distance_measure, num_neighbors=defaults["final_num_neighbors"],
                        kind="multivector" if hosted.is_multivector else
                        getattr(searcher, "kind", searcher.config.kind),
                        config_json=index.config_json if hosted.is_multivector else searcher.config.to_json(),
                        leaves_to_search=defaults["leaves_to_search"],
                        pre_reorder_num_neighbors=defaults["pre_reorder_num_neighbors"],
                        num_leaves=getattr(searcher, "num_leaves", 0), simd_level=searcher.simd_level,
                        format_version=searcher.format_version, library_version=annlib.__version__,
                        writable=hosted.writer is not None)
    if hosted.is_multivector:
        info.token_dim, info.token_dtype = index.token_dim, index.token_dtype
        info.bytes_per_token, info.num_tokens = index.bytes_per_token, index.num_tokens
    if hosted.writer is not None:
        stats = hosted.writer.stats()
        info.last_snapshot_unix_s = stats["last_snapshot_unix_s"]
        info.wal_records, info.wal_bytes = stats["wal_records"], stats["wal_bytes"]
        info.last_sequence = stats["last_sequence"]
    return info


@dataclass(frozen=True)
class Limits:
    """Per-call bounds (the index's own bounds apply too: k never exceeds its points)."""
    max_k: int = 1024
    max_candidates: int = 16384
    max_batch: int = 8192

    def check(self, value, name: str, bound: int, flag: str) -> None:
        if value is not None and value > bound:
            raise invalid(f"{name} is {value}; this server allows at most {bound} ({flag})")


_KNOBS = ("final_num_neighbors", "leaves_to_search", "pre_reorder_num_neighbors")


def search_knobs(options: pb.SearchOptions, hosted: Hosted, limits: Limits = Limits()) -> dict:
    # The set fields in one call (most requests set none): this runs on every RPC.
    given = {field.name: value for field, value in options.ListFields()}
    knobs = dict.fromkeys(_KNOBS)
    if not given:
        return knobs
    if "num_candidates" in given and not hosted.is_multivector:
        raise invalid("num_candidates applies to multi-vector indexes only")
    limits.check(given.get("final_num_neighbors"), "final_num_neighbors", limits.max_k, "--max-k")
    for name in ("pre_reorder_num_neighbors", "num_candidates"):
        limits.check(given.get(name), name, limits.max_candidates, "--max-candidates")
    knobs.update((name, given[name]) for name in _KNOBS if name in given)
    for name in ("allowlist", "denylist"):
        if name in given:
            if hosted.is_multivector:
                raise invalid(f"{name} applies to single-vector indexes only")
            knobs[name] = np.asarray(given[name].ids, dtype=np.int64)
    return knobs


def require_multivector(hosted: Hosted) -> None:
    if not hosted.is_multivector:
        raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"index {hosted.name!r} is a single-vector index; re-ranking needs a multi-vector index")


class SearchServicer(rpc.SearchServiceServicer):
    def __init__(self, registry: IndexRegistry, *, max_response_bytes: int, batch_threads: int = 0,
                 batcher: SearchBatcher | None = None, limits: Limits = Limits()):
        self._registry = registry
        self._max_response_bytes = max_response_bytes
        self._batch_threads = batch_threads
        self._batcher = batcher
        self._limits = limits
        self._batch_turn = threading.Lock()

    @rpc_method
    def ListIndexes(self, request, context):
        return pb.ListIndexesResponse(indexes=[index_info(h) for h in self._registry.all()])

    @rpc_method
    def DescribeIndex(self, request, context):
        return index_info(self._registry.get(request.index))

    @rpc_method
    def Search(self, request, context):
        hosted = self._registry.get(request.index)
        query = from_matrix(request.query, "query", ndim=(1, 2))
        knobs = search_knobs(request.options, hosted, self._limits)
        if self._batcher is not None and "allowlist" not in knobs and "denylist" not in knobs \
                and query.size == hosted.searcher.dim:
            # Concurrent calls are searched together (batcher.py).
            done = self._batcher.search(hosted.searcher, query.reshape(-1), knobs["final_num_neighbors"],
                                        knobs["leaves_to_search"], knobs["pre_reorder_num_neighbors"])
            try:
                ids, scores = done.result(timeout=wait_timeout(context))
            except futures.TimeoutError:
                raise TimeoutError from None
        else:
            ids, scores = hosted.searcher.search(query, **knobs, num_threads=1)
        return pb.SearchResponse(neighbors=to_neighbors(ids, scores))

    @rpc_method
    def SearchBatch(self, request, context):
        hosted = self._registry.get(request.index)
        queries = from_matrix(request.queries, "queries")
        self._limits.check(len(queries), "the number of queries", self._limits.max_batch, "--max-batch")
        knobs = search_knobs(request.options, hosted, self._limits)
        k = knobs["final_num_neighbors"] or hosted.searcher.config.num_neighbors
        if len(queries) * k * _BYTES_PER_RESULT > self._max_response_bytes:
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{len(queries)} queries x {k} results exceed the server's message size limit "
                               f"({self._max_response_bytes} bytes); send fewer queries per call")
        results = []
        for start in range(0, len(queries), _BATCH_CHUNK):
            check_deadline(context.time_remaining())
            # One chunk at a time on the cores: concurrent batches take turns by chunk instead
            # of each starting a thread per core (which oversubscribed the machine).
            timeout = wait_timeout(context)
            if not self._batch_turn.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError
            try:
                ids, scores = hosted.searcher.search_batched(queries[start:start + _BATCH_CHUNK], **knobs,
                                                             num_threads=self._batch_threads)
            finally:
                self._batch_turn.release()
            results.extend(to_neighbors(i, s) for i, s in zip(ids, scores))
        return pb.SearchBatchResponse(results=results)

    @rpc_method
    def Rerank(self, request, context):
        hosted = self._registry.get(request.index)
        require_multivector(hosted)
        tokens = from_matrix(request.query_tokens, "query_tokens")
        self._limits.check(request.k or None, "k", self._limits.max_k, "--max-k")
        self._limits.check(len(request.candidate_ids), "the number of candidate_ids", self._limits.max_candidates,
                           "--max-candidates")
        ids, scores = hosted.index.rerank(tokens, np.asarray(request.candidate_ids, dtype=np.int64),
                                          request.k or None)
        return pb.RerankResponse(neighbors=to_neighbors(ids, scores))

    @rpc_method
    def SearchAndRerank(self, request, context):
        hosted = self._registry.get(request.index)
        require_multivector(hosted)
        query = from_matrix(request.query, "query", ndim=(1, 2)) if request.HasField("query") else None
        tokens = from_matrix(request.query_tokens, "query_tokens")
        knobs = search_knobs(request.options, hosted, self._limits)
        k = knobs.pop("final_num_neighbors") or hosted.searcher.config.num_neighbors
        candidates = option(request.options, "num_candidates") or max(DEFAULT_NUM_CANDIDATES, k)
        ids, scores = hosted.index.search(query, tokens, k, candidates, **knobs)
        return pb.SearchAndRerankResponse(neighbors=to_neighbors(ids, scores))


    # ---- writes -------------------------------------------------------------------

    @rpc_method
    def Upsert(self, request, context):
        writer = self._writer(request.index)
        ids = ids_of(request.ids)
        vectors = from_matrix(request.vectors, "vectors", ndim=(1, 2))
        if vectors.ndim == 1:
            vectors = vectors.reshape(1, -1)
        if len(vectors) != len(ids):
            raise invalid(f"ids has {len(ids)} entries but vectors has {len(vectors)} rows")
        sequence, _ = self._durable(writer.upsert(ids, vectors), context)
        return pb.UpsertResponse(sequence=sequence)

    @rpc_method
    def Delete(self, request, context):
        writer = self._writer(request.index)
        sequence, deleted = self._durable(writer.delete(ids_of(request.ids)), context)
        return pb.DeleteResponse(sequence=sequence, deleted=deleted)

    def _writer(self, name: str):
        hosted = self._registry.get(name)
        if hosted.writer is None:
            why = ("multi-vector indexes take no writes" if hosted.is_multivector else
                   "start the server with --data-dir to accept writes (they are logged there before the reply)")
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"index {name!r} is read-only: {why}")
        return hosted.writer

    @staticmethod
    def _durable(done, context):
        """Waits for a queued write. Past the deadline the caller is told DEADLINE_EXCEEDED,
        but the write may still be applied: retry it (writes are idempotent)."""
        try:
            return done.result(timeout=wait_timeout(context))
        except futures.TimeoutError:
            raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the write was "
                               "durable; it may still be applied (upserts and deletes are safe to retry)") from None


class AdminServicer(rpc.AdminServiceServicer):
    def __init__(self, registry: IndexRegistry, *, enabled: bool, on_change):
        self._registry = registry
        self._enabled = enabled
        self._on_change = on_change

    def _require_enabled(self):
        if not self._enabled:
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED,
                               "admin RPCs are disabled; start the server with --enable-admin")

    @rpc_method
    def LoadIndex(self, request, context):
        self._require_enabled()
        if not request.path:
            raise invalid("path is empty")
        hosted = self._registry.load(request.name, request.path, replace=request.replace)
        log.info("loaded index %r from %s", hosted.name, hosted.path)
        self._on_change()
        return pb.LoadIndexResponse(index=index_info(hosted))

    @rpc_method
    def UnloadIndex(self, request, context):
        self._require_enabled()
        self._registry.unload(request.name)
        log.info("unloaded index %r", request.name)
        self._on_change()
        return pb.UnloadIndexResponse()
