"""annlib.distributed on a local Ray instance (loopback only, usage statistics off):
a sharded index returns exactly what one index over the same points returns (ids and
scores), through updates, filters, save/load and a shard actor killed mid-search."""
from __future__ import annotations

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import annlib
from annlib.datasets import write_fvecs

ray = pytest.importorskip("ray", reason="Ray has no wheel for this platform")
dist = pytest.importorskip("annlib.distributed")
from annlib.distributed.shard import FilterKey  # noqa: E402 - after Ray is known to import

D = 16


@pytest.fixture(scope="module", autouse=True)
def local_ray(neutral_cwd):
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _data(n=6000, nq=200, seed=0, duplicates=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)).astype(np.float32)
    if duplicates:  # exact ties: the same vector under several ids, and rounded values
        x[n // 2:n // 2 + n // 10] = x[:n // 10]
        x = np.round(x, 1)
    return x, rng.standard_normal((nq, D)).astype(np.float32)


def _stages(x, metric, *, soar=True, reorder="float32", ids=None):
    b = annlib.builder(x, 10, metric, ids=ids).tree(24, 5, soar_lambda=1.0 if soar else None).score_ah(2, 0.2)
    return b.reorder(30, dtype=reorder) if reorder else b


def _same(single, sharded, queries, **kwargs):
    i1, s1 = single.search_batched(queries, **kwargs)
    i2, s2 = sharded.search_batched(queries, **kwargs)
    np.testing.assert_array_equal(i2, i1)
    np.testing.assert_array_equal(s2, s1)


def _same_compiled(single, sharded, queries, allowlist=None, denylist=None, compiled=None):
    """Each index's compiled filter of the same lists gives the same results (compiled: the
    pair compiled earlier, e.g. before updates)."""
    one, many = compiled or (single.compile_filter(allowlist, denylist), sharded.compile_filter(allowlist, denylist))
    i1, s1 = single.search_batched(queries, allowlist=one)
    i2, s2 = sharded.search_batched(queries, allowlist=many)
    np.testing.assert_array_equal(i2, i1)
    np.testing.assert_array_equal(s2, s1)


@pytest.mark.parametrize("metric,mode,reorder,num_shards", [
    ("dot_product", "leaf", "float32", 3), ("squared_l2", "leaf", "bfloat16", 3), ("cosine", "leaf", "int8", 3),
    ("dot_product", "random", "float32", 3), ("squared_l2", "leaf", None, 3), ("dot_product", "leaf", "int8", 1)])
def test_sharded_search_equals_one_index(metric, mode, reorder, num_shards):
    x, q = _data(duplicates=True)
    single = _stages(x, metric, reorder=reorder).build(progress=False)
    sharded = dist.build(_stages(x, metric, reorder=reorder), num_shards=num_shards, mode=mode, progress=False)
    try:
        if mode == "leaf" and num_shards > 1:
            # Both kinds of query occur: leaves on one shard (finished there) and on several (merged).
            leaves, _ = single.choose_leaves(q, 5)
            touched = [len(set(sharded.leaf_owner[row])) for row in leaves]
            assert min(touched) == 1 and max(touched) > 1
        assert len(sharded) == len(single) == len(x)
        assert sum(sharded.shard_sizes()) == len(x)
        _same(single, sharded, q)
        _same(single, sharded, q, final_num_neighbors=40, leaves_to_search=9,
              **({"pre_reorder_num_neighbors": 60} if reorder else {}))
        _same(single, sharded, q[:1])
        # Filters: a broad one (more leaves), a selective one (the exact path), a denylist, a mask.
        _same(single, sharded, q, allowlist=np.arange(0, len(x), 5))
        _same(single, sharded, q, allowlist=np.arange(0, len(x), 97))
        _same(single, sharded, q, denylist=np.arange(0, len(x), 2))
        _same(single, sharded, q, allowlist=np.arange(len(x) + 5) % 3 == 0)
        _same(single, sharded, q, allowlist=[])
        # Compiled once on every shard: the same answers as the lists, and as one index's.
        _same_compiled(single, sharded, q, np.arange(0, len(x), 5))
        _same_compiled(single, sharded, q, np.arange(0, len(x), 97), np.arange(0, len(x), 2))
        _same_compiled(single, sharded, q, denylist=np.arange(len(x) + 5) % 2 == 0)
        one_ids, one_scores = sharded.search(q[0])
        np.testing.assert_array_equal(one_ids, single.search(q[0])[0])
        assert one_scores.shape == (10,)
    finally:
        sharded.shutdown()


def test_integer_data_is_held_in_bfloat16_on_every_shard_as_in_one_index():
    # A float32 copy of data bfloat16 holds exactly is held in half the bytes by a build;
    # shards filled from chunks hold it the same way, and widen only when a point needs it.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 200, (6000, D)).astype(np.float32)
    q = rng.integers(0, 200, (200, D)).astype(np.float32)

    def held(index):
        def dtype(shard):
            return str(np.asarray(shard.searcher._arrays()["rows"]).dtype)
        return [ray.get(actor.__ray_call__.remote(dtype)) for actor in index._actors]

    single = _stages(x, "squared_l2").build(progress=False)
    sharded = dist.build(_stages(x, "squared_l2"), num_shards=3, progress=False)
    try:
        assert np.asarray(single._arrays()["rows"]).dtype == np.uint16
        assert held(sharded) == ["uint16"] * 3
        _same(single, sharded, q)
        for index in (single, sharded):  # points bfloat16 cannot hold, then ones it can
            index.upsert(np.arange(100, 130), x[:30] + np.float32(0.3))
            index.upsert(np.arange(200, 260), x[1000:1060] + 1)
        assert "float32" in held(sharded) and np.asarray(single._arrays()["rows"]).dtype == np.float32
        _same(single, sharded, q)
        np.testing.assert_array_equal(sharded.vectors(np.arange(100, 130)), x[:30] + np.float32(0.3))
    finally:
        sharded.shutdown()


def test_shards_own_whole_leaves_balanced():
    x, _ = _data(n=8000)
    sharded = dist.build(_stages(x, "dot_product"), num_shards=4, progress=False)
    try:
        owner = sharded.leaf_owner
        assert owner.shape == (24,) and set(owner) == {0, 1, 2, 3}
        sizes = np.array(sharded.shard_sizes())
        assert sizes.sum() == len(x) and sizes.max() < 1.6 * sizes.mean()
        report = sharded.health()
        assert report["size"] == len(x) and all(shard["alive"] for shard in report["shards"])
        assert not any(shard["restartable"] for shard in report["shards"])
        # One index's report: its leaves as one index over the same points has them.
        single = _stages(x, "dot_product").build(progress=False).health()
        for key in ("size", "num_leaves", "points_in_leaves", "leaf_size_max_over_mean", "leaf_size_cv",
                    "empty_leaves"):
            assert report[key] == pytest.approx(single[key]), key
        assert report["added_since_training"] == len(x) and not report["rebalance_recommended"]
    finally:
        sharded.shutdown()


def test_updates_match_one_index(tmp_path):
    x, q = _data(seed=1)
    single = _stages(x, "squared_l2").build(progress=False)
    sharded = dist.build(_stages(x, "squared_l2"), num_shards=3, progress=False)
    try:
        rng = np.random.default_rng(5)
        allow = np.arange(0, 60_000, 3)
        compiled = (single.compile_filter(allow), sharded.compile_filter(allow))  # they follow the updates
        # Replacements (points move to other leaves, maybe other shards) and new ids.
        ids = np.concatenate([np.arange(100, 400), np.arange(50_000, 50_300)])
        vectors = rng.standard_normal((len(ids), D)).astype(np.float32)
        single.upsert(ids, vectors)
        sharded.upsert(ids, vectors)
        _same(single, sharded, q)
        gone = np.arange(1000, 1700)
        single.delete(gone)
        sharded.delete(gone)
        assert len(sharded) == len(single)
        report, expected = sharded.health(), single.health()
        for key in ("size", "points_in_leaves", "leaf_size_cv", "empty_leaves"):
            assert report[key] == pytest.approx(expected[key]), key
        assert report["deleted_pending_compaction"] >= expected["deleted_pending_compaction"] > 0
        assert not sharded.contains(gone).any() and sharded.contains(ids).all() and 50_000 in sharded
        _same(single, sharded, q)
        _same(single, sharded, q, allowlist=allow)
        _same_compiled(single, sharded, q, compiled=compiled)
        with pytest.raises(ValueError, match="no point with id 1000"):
            sharded.delete([5, 1000])
        assert 5 in sharded and len(sharded) == len(single)
        with pytest.raises(ValueError):
            sharded.upsert([1, 1], rng.standard_normal((2, D)).astype(np.float32))
        with pytest.raises(ValueError, match="NaN"):
            sharded.upsert([7], np.full((1, D), np.nan, np.float32))
        _same(single, sharded, q)
    finally:
        sharded.shutdown()


def test_save_load_and_restart_after_a_kill(tmp_path):
    x, q = _data(seed=2)
    single = _stages(x, "cosine").build(progress=False)
    sharded = dist.build(_stages(x, "cosine"), num_shards=3, progress=False)
    path = tmp_path / "sharded"
    try:
        sharded.save(path)
    finally:
        sharded.shutdown()
    with pytest.raises(ValueError, match="annlib.distributed.load"):
        annlib.load(path)
    alone = annlib.load(path / "shard_0001")  # each shard is an ordinary index where it lives
    assert isinstance(alone, annlib.QuantizedSearcher) and 0 < len(alone) < len(x)

    loaded = dist.load(path)
    try:
        assert len(loaded) == len(x) and loaded.search_defaults == single.search_defaults
        _same(single, loaded, q)
        # Updates after the save are kept by the coordinator and replayed into a restarted shard.
        rng = np.random.default_rng(3)
        ids = np.arange(200, 500)
        vectors = rng.standard_normal((len(ids), D)).astype(np.float32)
        single.upsert(ids, vectors)
        loaded.upsert(ids, vectors)
        single.delete(np.arange(2000, 2100))
        loaded.delete(np.arange(2000, 2100))
        compiled = (single.compile_filter(np.arange(0, len(x), 4)), loaded.compile_filter(np.arange(0, len(x), 4)))
        victim = loaded._actors[1]
        os.kill(ray.get(victim.status.remote())["pid"], signal.SIGKILL)
        time.sleep(0.5)
        _same(single, loaded, q)
        assert loaded._actors[1] is not victim and len(loaded) == len(single)
        _same_compiled(single, loaded, q, compiled=compiled)  # the restarted shard compiled it again
    finally:
        loaded.shutdown()


def test_a_shard_killed_mid_search_is_restarted(tmp_path):
    x, q = _data(n=8000, nq=2000, seed=4)
    single = _stages(x, "dot_product").build(progress=False)
    sharded = dist.build(_stages(x, "dot_product"), num_shards=2, progress=False)
    try:
        sharded.save(tmp_path / "index")
        expected = single.search_batched(q)
        pid = ray.get(sharded._actors[0].status.remote())["pid"]
        results, errors = [], []

        def search_repeatedly():
            try:
                for _ in range(20):
                    results.append(sharded.search_batched(q))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        worker = threading.Thread(target=search_repeatedly)
        worker.start()
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        worker.join(timeout=120)
        assert not errors and len(results) == 20
        for ids, scores in results:
            np.testing.assert_array_equal(ids, expected[0])
            np.testing.assert_array_equal(scores, expected[1])
    finally:
        sharded.shutdown()


def test_unsaved_shard_death_names_the_shard_or_answers_partially():
    x, q = _data(seed=6)
    sharded = dist.build(_stages(x, "dot_product"), num_shards=3, progress=False)
    try:
        os.kill(ray.get(sharded._actors[2].status.remote())["pid"], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(dist.ShardUnavailableError, match="shard 2 of 3.*never saved") as info:
            sharded.search_batched(q)
        assert info.value.shard == 2
        ids, scores, answered = sharded.search_batched(q, allow_partial=True)
        assert answered == [0, 1] and ids.shape == (len(q), 10)
        report = sharded.health()
        assert [shard["alive"] for shard in report["shards"]] == [True, True, False]
    finally:
        sharded.shutdown()


def test_build_from_files_and_iterators_trains_on_a_sample(tmp_path):
    x, q = _data(n=9000, seed=7)
    sample = x[::3]
    # One index trained on the same sample and filled with every point, in the same order.
    single = _stages(sample, "squared_l2").train(progress=False)
    single.upsert(np.arange(len(x)), x)
    np.save(tmp_path / "x.npy", x)
    write_fvecs(tmp_path / "x.fvecs", x)
    sources = [tmp_path / "x.npy", str(tmp_path / "x.fvecs"), np.load(tmp_path / "x.npy", mmap_mode="r"),
               (x[i:i + 2500] for i in range(0, len(x), 2500)),
               ((np.arange(i, min(i + 4000, len(x))), x[i:i + 4000]) for i in range(0, len(x), 4000))]
    for source in sources:
        sharded = dist.build(_stages(sample, "squared_l2"), num_shards=2, data=source, chunk_size=1000,
                             progress=False)
        try:
            assert len(sharded) == len(x)
            _same(single, sharded, q)
        finally:
            sharded.shutdown()


def test_custom_ids_and_errors():
    x, q = _data(n=3000, seed=8)
    ids = np.arange(len(x), dtype=np.int64) * 7 + 3
    single = _stages(x, "dot_product", ids=ids).build(progress=False)
    sharded = dist.build(_stages(x, "dot_product", ids=ids), num_shards=2, progress=False)
    try:
        _same(single, sharded, q)
        with pytest.raises(ValueError, match="NaN"):
            sharded.search_batched(np.full((2, D), np.nan, np.float32))
        with pytest.raises(ValueError, match="dimension"):
            sharded.search_batched(np.zeros((2, D + 1), np.float32))
        with pytest.raises(ValueError, match="final_num_neighbors"):
            sharded.search_batched(q, final_num_neighbors=len(x) + 1)
        with pytest.raises(ValueError, match="leaves_to_search"):
            sharded.search_batched(q, leaves_to_search=25)
        with pytest.raises(TypeError, match="compiled"):
            sharded.search_batched(q, allowlist=single.compile_filter(allowlist=[3]))
        with pytest.raises(TypeError, match="compiled"):
            sharded.compile_filter(allowlist=single.compile_filter(allowlist=[3]))
        with pytest.raises(ValueError, match="1-D"):
            sharded.compile_filter(allowlist=np.zeros((2, 2), np.int64))
        compiled = sharded.compile_filter(allowlist=ids[:50])
        assert np.isin(sharded.search_batched(q, allowlist=compiled)[0], ids[:50]).all()
        with pytest.raises(ValueError, match="denylist"):
            sharded.search_batched(q, allowlist=compiled, denylist=[3])
        other = dist.build(_stages(x, "dot_product", ids=ids), num_shards=2, progress=False)
        try:
            with pytest.raises(ValueError, match="another index"):
                other.search_batched(q, allowlist=compiled)
        finally:
            other.shutdown()
        # Dropping the filter object drops it from the coordinator and (without waiting) the shards.
        key = compiled.key
        del compiled
        gc.collect()
        assert key not in sharded._filters
        deadline = time.monotonic() + 30
        while True:
            try:
                sharded._call([(0, "allowed_count", (FilterKey(key), None))])
            except ValueError as exc:
                assert "not on the shard" in str(exc)
                break
            assert time.monotonic() < deadline, "the shard still holds a dropped filter"
            time.sleep(0.1)
    finally:
        sharded.shutdown()
    with pytest.raises(ValueError, match="num_shards"):
        dist.build(_stages(x, "dot_product"), num_shards=0)
    with pytest.raises(ValueError, match="mode"):
        dist.build(_stages(x, "dot_product"), num_shards=2, mode="hash")
    with pytest.raises(ValueError, match="tree"):
        dist.build(annlib.builder(x, 10, "dot_product").score_brute_force(), num_shards=2)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[2500, 3] = np.nan
        dist.build(_stages(x, "dot_product"), num_shards=2, data=bad, progress=False)


def _live_shard_actors() -> int:
    from ray._private import state  # the GCS's actor table (the state API needs the dashboard)

    return sum(1 for actor in state.actors().values()
               if actor["State"] != "DEAD" and "Shard" in actor.get("ActorClassName", ""))


def test_ctrl_c_during_a_build_stops_its_shards():
    x, _ = _data(n=6000, seed=9)
    before = _live_shard_actors()

    def chunks():
        yield x[:2000]
        yield x[2000:4000]
        raise KeyboardInterrupt  # what Ctrl-C raises in the driver while it reads the input

    with pytest.raises(KeyboardInterrupt):
        dist.build(_stages(x[:3000], "dot_product"), num_shards=2, data=chunks(), chunk_size=1000, progress=False)
    deadline = time.time() + 10
    while _live_shard_actors() > before and time.time() < deadline:
        time.sleep(0.2)
    assert _live_shard_actors() == before


def test_the_tuner_reads_a_sharded_index_as_one_index():
    """annlib.tune's view of the internals over shards (leaf_order, leaves_of, leaf_slots,
    ah_candidates) gives one index's rank table, and tune() holds its recall target."""
    from annlib.tuning.ranks import record_ranks

    x, q = _data(n=8000, nq=300, seed=10)
    single = _stages(x, "squared_l2").build(progress=False)
    sharded = dist.build(_stages(x, "squared_l2"), num_shards=3, progress=False)
    try:
        truth = annlib.builder(x, 10, "squared_l2").score_brute_force().build().search_batched(q)[0]
        held = np.arange(0, len(x), 7)
        # The same leaves (a built index lists a point's two in leaf order, an upserted one
        # primary first: the tuner takes the better-ranked either way).
        np.testing.assert_array_equal(np.sort(sharded.leaves_of(held), axis=1), np.sort(single.leaves_of(held), axis=1))
        np.testing.assert_array_equal(sharded.leaf_slots(), single.leaf_slots())
        for leaves in (1, 5, 24):
            np.testing.assert_array_equal(sharded.ah_candidates(q, leaves, 60)[0], single.ah_candidates(q, leaves, 60)[0])
        leaves = np.array([1, 3, 8, 24])
        one, many = record_ranks(single, q, truth, 200, leaves), record_ranks(sharded, q, truth, 200, leaves)
        np.testing.assert_array_equal(many.recall(), one.recall())
        result = annlib.tune(sharded, q, target_recall=0.9, ground_truth=truth, progress=False)
        assert result.heldout_recall >= 0.85 and result.params.leaves_to_search <= 24
        sharded.set_default_params(result.params)
        assert sharded.search_defaults["leaves_to_search"] == result.params.leaves_to_search
        np.testing.assert_array_equal(sharded.vectors([5, 700]), single.vectors([5, 700]))
        assert sorted(sharded.ids()) == list(range(len(x)))
    finally:
        sharded.shutdown()


def test_autopilot_over_shards_picks_the_stages_for_all_the_data_and_tunes_them():
    from annlib.defaults import BRUTE_FORCE_BELOW, choose_build

    x, q = _data(n=BRUTE_FORCE_BELOW + 4000, nq=300, seed=11)
    truth = annlib.builder(x, 10, "squared_l2").score_brute_force().build().search_batched(q[200:])[0]
    # The builder's rows are a training sample, data= all of the points: the stages are
    # chosen for all of them, and the tuner reads the vectors from the reorder copy.
    sample = x[::4]
    sharded = dist.build(annlib.builder(sample, 10, "squared_l2").autopilot(target_recall=0.9, queries=q[:200]),
                         num_shards=2, data=x, progress=False)
    try:
        expected = choose_build(len(x), D, "squared_l2", 0.9)
        assert sharded.num_leaves == expected.num_leaves != choose_build(len(sample), D, "squared_l2", 0.9).num_leaves
        result = sharded.tune_result
        assert result is not None and result.heldout_recall >= 0.85
        assert sharded.search_defaults["leaves_to_search"] == result.params.leaves_to_search
        ids, _ = sharded.search_batched(q[200:])  # the tuned knobs, by default
        assert annlib.recall_at_k(ids, truth) >= 0.85
    finally:
        sharded.shutdown()
    # All of the data in the builder, no query log: the tuner samples the builder's rows.
    sharded = dist.build(annlib.builder(x, 10, "squared_l2").autopilot(target_recall=0.9), num_shards=2,
                         progress=False)
    try:
        assert sharded.tune_result.heldout_recall >= 0.85 and "database" in sharded.tune_result.queries_source
    finally:
        sharded.shutdown()
    with pytest.raises(ValueError, match="iterator"):
        dist.build(annlib.builder(sample, 10, "squared_l2").autopilot(target_recall=0.9), num_shards=2,
                   data=iter([x[:1000], x[1000:]]), progress=False)
    with pytest.raises(ValueError, match="searched exactly by one index"):
        dist.build(annlib.builder(x[:5000], 10, "squared_l2").autopilot(target_recall=0.9), num_shards=2,
                   progress=False)


class _FlakyClient:
    """A stand-in for the ray module whose Ray Client connection fails `failures` times
    the way a cluster's proxy reports a per-connection server that did not start."""

    def __init__(self, failures: int, message: str = "Starting Ray client server failed. See ..."):
        self.failures, self.message, self.calls = failures, message, 0

    def init(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionAbortedError(f"Initialization failure from server:\n{self.message}")


# The proxy's two reports of a per-connection server that died at start: it saw the exit,
# or it read the dead child's command line first (ray 2.60's proxier.py).
_ZOMBIE = ("Traceback (most recent call last):\n  File \".../proxier.py\", line 396, in start_specific_server\n"
           "psutil.ZombieProcess: PID still exists but it's a zombie (pid=5335)")


@pytest.mark.parametrize("message", ["Starting Ray client server failed. See ...", _ZOMBIE])
def test_a_ray_client_connection_is_retried_when_the_proxy_fails_to_start_its_server(monkeypatch, message):
    from annlib.distributed import _ray
    monkeypatch.setattr(_ray.time, "sleep", lambda s: None)
    flaky = _FlakyClient(failures=_ray.CLIENT_CONNECT_ATTEMPTS - 1, message=message)
    _ray._init_at(flaky, "ray://127.0.0.1:1")
    assert flaky.calls == _ray.CLIENT_CONNECT_ATTEMPTS
    always = _FlakyClient(failures=99)
    with pytest.raises(ConnectionAbortedError, match="Starting Ray client server failed"):
        _ray._init_at(always, "ray://127.0.0.1:1")
    assert always.calls == _ray.CLIENT_CONNECT_ATTEMPTS
    other = _FlakyClient(failures=1, message="version mismatch")  # not the proxy's hiccup: no retry
    with pytest.raises(ConnectionAbortedError, match="version mismatch"):
        _ray._init_at(other, "ray://127.0.0.1:1")
    assert other.calls == 1
