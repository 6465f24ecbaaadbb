"""A sharded build: train once, fill the shards in parallel.

  1. One training step on the builder's rows (all of the data, or a sample of it
     when `data=` gives the rest): the leaves, SOAR's rule and the AH codebooks,
     exactly as Builder.train() learns them (FAISS's "train once, add per shard").
  2. The leaves assigned to shards, neighbours together, balanced by their sizes
     in the training rows (routing.assign_leaves); or, random split, points by
     their ids.
  3. The input read in chunks; Ray tasks place each chunk (the one rule of
     annlib/quantized/placement.py) and cut it into the shards' parts, which the
     shard actors add in input order. At most a few chunks are in flight, so the
     driver holds a few chunks, whatever the input's size.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from .._progress import progress_bar
from .._validate import as_float_matrix, check_num_threads, normalize_rows
from ..builder import Builder
from ..config import IndexConfig
from ..defaults import BRUTE_FORCE_BELOW, configure
from ..quantized import train_quantized
from ..quantized.placement import place_in_index
from ..quantized.reorder_copy import rows_dtype_to_add
from ..tuning import tune
from . import _ray
from .routing import MODES, assign_leaves, split
from .searcher import ShardedSearcher, actor_class
from .sources import chunks

BALANCE_SAMPLE = 65_536  # training rows placed to estimate the leaves' sizes


def place_chunk(config_json: str, arrays: dict, ids: np.ndarray, numbers: np.ndarray, rows, num_shards: int,
                owner):
    """A Ray task: the shards' parts of one chunk of points (routing.split)."""
    config = IndexConfig.from_json(config_json)
    x = as_float_matrix(rows, "data", dim=int(np.asarray(arrays["meta"])[1]))
    if config.distance_measure == "cosine":
        x = normalize_rows(x, "data")
    placement = place_in_index(config, arrays, x, num_threads=1, rows_dtype=rows_dtype_to_add(config, arrays, x))
    parts = split(placement, ids, numbers, num_shards, owner)
    return parts[0] if num_shards == 1 else tuple(parts)


def leaf_sizes(skeleton, sample: np.ndarray, num_threads: int) -> np.ndarray:
    """Copies per leaf (SOAR's included) of the training rows, a sample of them at most."""
    if len(sample) > BALANCE_SAMPLE:
        pick = np.sort(np.random.default_rng(0).choice(len(sample), BALANCE_SAMPLE, replace=False))
        sample = sample[pick]
    state = skeleton._state
    x = normalize_rows(sample, "database") if skeleton.distance_measure == "cosine" else sample
    placement = place_in_index(state.config, state.arrays, x, num_threads)
    return np.bincount(np.concatenate([placement.leaves, placement.spill_leaves]), minlength=skeleton.num_leaves)


def build(builder: Builder, num_shards: int, *, data=None, ids=None, mode: str = "leaf", chunk_size: int = 65_536,
          actor_options: dict | None = None, shard_threads: int = 0, num_threads: int = 0,
          progress: bool | None = None) -> ShardedSearcher:
    """A sharded index of the builder's stages (annlib.builder(...).tree(...).score_ah(...)
    .reorder(...), not built) over `num_shards` Ray actors. With builder(...).autopilot(...)
    the stages are annlib's defaults for the data's size, and the index is tuned for the
    target afterwards (tune_result), as on one index.

    data=None: the builder's rows (and ids) are the data. Otherwise the builder's rows are
    the training sample and `data` is every point: an array, a memory map, an h5py
    dataset, a .npy/.fvecs/.hdf5 path, or an iterator of arrays or (ids, arrays) pairs, read
    `chunk_size` rows at a time; ids= gives the ids of an array's rows (default 0..n-1).
    mode "leaf" (shards own leaves; the default) or "random" (points split by id).
    actor_options: Ray options of the shard actors (num_cpus, resources, ...);
    shard_threads: threads per shard search (0: the node's cores). Ray is started on this
    machine unless the caller connected to a cluster first."""
    if not isinstance(builder, Builder):
        raise TypeError(f"build() takes an annlib.builder(...) with its stages, got {type(builder).__name__}")
    if builder._autopilot is not None:
        return _build_with_autopilot(builder, num_shards, data=data, ids=ids, mode=mode, chunk_size=chunk_size,
                                     actor_options=actor_options, shard_threads=shard_threads,
                                     num_threads=num_threads, progress=progress)
    if isinstance(num_shards, bool) or not isinstance(num_shards, (int, np.integer)) or num_shards < 1:
        raise ValueError(f"num_shards must be an integer >= 1, got {num_shards!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    num_threads = check_num_threads(num_threads)
    config = builder.config()
    if config.kind != "quantized" or config.tree is None:
        raise ValueError("a sharded index partitions its points: give the builder tree() and score_ah() stages")
    if len(builder.database) == 0:
        raise ValueError("the builder needs rows to train on (all of the data, or a sample with data= the rest)")
    if data is None:
        data, ids = builder.database, builder._ids
    elif ids is None and builder._ids is not None:
        raise ValueError("with data=, the builder's rows are only a training sample: pass the data's ids as ids=")
    stream, total = chunks(data, ids, int(chunk_size))  # checks the input before any training

    skeleton = train_quantized(config, builder.database, num_threads, progress)
    config = skeleton.config  # as trained: soar_lambda="auto" decided on the training rows
    owner = None
    if mode == "leaf":
        centers = np.asarray(skeleton._state.arrays["centroids"])[:, :skeleton.dim]
        owner = assign_leaves(leaf_sizes(skeleton, builder.database, num_threads), num_shards, centers)
    ray = _ray.ensure_started()
    arrays_ref = ray.put(dict(skeleton._state.arrays))
    source = {"config": config.to_json()}
    actors = [actor_class(actor_options).remote(source, shard_threads, arrays_ref) for _ in range(num_shards)]
    try:
        statuses, added = _fill(ray, actors, stream, total, config.to_json(), arrays_ref, owner, progress)
    except BaseException:
        for actor in actors:  # Ctrl-C or a bad chunk: no half-built shards left running
            ray.kill(actor)
        raise
    return ShardedSearcher(skeleton, owner, actors, statuses, mode=mode, sources=[None] * num_shards,
                           next_number=added, actor_options=actor_options, shard_threads=shard_threads)


def _build_with_autopilot(builder: Builder, num_shards: int, *, data, ids, chunk_size: int, progress, num_threads,
                          **options) -> ShardedSearcher:
    """builder(...).autopilot() over shards, as on one index: the stages annlib.defaults
    chooses for the data's size (all of it, not the training sample), then annlib.tune for
    the target on the sharded index; the result is in tune_result."""
    wanted = builder._autopilot
    if not wanted.get("exact_scores", True):
        raise ValueError("autopilot(exact_scores=False) narrows one index's re-ranking copy after tuning; a "
                         "sharded index does not: give the stages yourself, e.g. .reorder(n, dtype='int8')")
    size = len(builder.database) if data is None else chunks(data, ids, max(1, int(chunk_size)))[1]
    if size is None:
        raise ValueError("autopilot() chooses the stages from the data's size, which an iterator does not tell: "
                         "pass the data as an array or a file, or give the stages yourself")
    staged = configure(Builder(builder.database, builder.num_neighbors, builder.distance_measure, ids=builder._ids),
                       builder.distance_measure, target_recall=wanted["target_recall"], size=size)
    if staged.config().kind != "quantized":
        raise ValueError(f"{size:,} points are searched exactly by one index (annlib's default below "
                         f"{BRUTE_FORCE_BELOW:,}): build one index, not a sharded one")
    sharded = build(staged, num_shards, data=data, ids=ids, chunk_size=chunk_size, progress=progress,
                    num_threads=num_threads, **options)
    try:
        # The builder's rows are the vectors of ids 0..n-1 only when they are all of the data
        # under default ids; else the tuner reads them from the index's float32 reorder copy.
        database = builder.database if data is None and builder._ids is None else None
        result = tune(sharded, wanted["queries"], target_recall=wanted["target_recall"],
                      max_latency_us=wanted["max_latency_us"], ground_truth=wanted["ground_truth"],
                      database=database, num_threads=num_threads, progress=progress,
                      recall_tolerance=wanted.get("recall_tolerance", 0.0))
    except BaseException:
        sharded.shutdown()
        raise
    sharded.set_default_params(result.params)
    sharded.tune_result = result
    return sharded


def _fill(ray, actors, stream, total, config_json, arrays_ref, owner, progress) -> tuple[list, int]:
    """Places the chunks in Ray tasks and adds them to the shards, a few chunks in flight:
    (the shards' statuses, points added). A point's insertion number is its input position."""
    num_shards = len(actors)
    place = ray.remote(place_chunk).options(num_returns=num_shards, num_cpus=1)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    in_flight: deque = deque()  # (task ref, the adds' refs, rows)
    statuses = [None] * num_shards
    bar = progress_bar(total=total, progress=progress, desc="sharded build", unit="pt")

    def finish_oldest():
        task, adds, rows = in_flight.popleft()
        for shard, status in enumerate(ray.get(adds)):
            statuses[shard] = status
        bar.update(rows)

    added = 0
    try:
        for chunk_ids, rows in stream:
            numbers = np.arange(added, added + len(chunk_ids), dtype=np.int64)
            added += len(chunk_ids)
            parts = place.remote(config_json, arrays_ref, chunk_ids, numbers, rows, num_shards, owner)
            parts = [parts] if num_shards == 1 else parts
            in_flight.append((parts, [actor.add.remote(part) for actor, part in zip(actors, parts)], len(rows)))
            while len(in_flight) > window:
                finish_oldest()
        while in_flight:
            finish_oldest()
    except BaseException:
        for parts, adds, _ in in_flight:
            for ref in parts:
                ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    if any(status is None for status in statuses):  # no data at all
        statuses = ray.get([actor.status.remote() for actor in actors])
    return statuses, added
