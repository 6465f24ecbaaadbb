"""Upsert and Delete over RPC: durable before the reply (write-ahead log +
fsync), replayed after kill -9, snapshotted, reported by DescribeIndex. Real
servers in subprocesses on loopback."""
import contextlib
import threading
import time

import grpc
import numpy as np
import pytest

import annlib
from annlib.service.codec import to_matrix
from annlib.service.wal import SNAPSHOT, WriteAheadLog
from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc
from conftest import run_threads
from service_client import ServerProcess

DIM = 8


def exact_index(path, n=200, seed=0):
    """A saved float32 brute-force index (exact: a vector finds itself at distance 0)."""
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    annlib.builder(x, 5, "squared_l2").score_brute_force().build().save(path)
    return x


def upsert(stub, ids, vectors, **kwargs):
    return stub.Upsert(pb.UpsertRequest(index="w", ids=list(ids), vectors=to_matrix(vectors)), timeout=30, **kwargs)


def delete(stub, ids):
    return stub.Delete(pb.DeleteRequest(index="w", ids=list(ids)), timeout=30)


def start(tmp_path, *extra):
    return ServerProcess("--index", f"w={tmp_path / 'index'}", "--data-dir", str(tmp_path / "data"), *extra)


def served_state(stub, ids, vectors_by_id):
    """For each id: the vector the server returns it for (exact search of that vector)."""
    found = {}
    for i in ids:
        v = vectors_by_id[i]
        r = stub.Search(pb.SearchRequest(index="w", query=to_matrix(v),
                                         options=pb.SearchOptions(final_num_neighbors=1)), timeout=30)
        found[i] = r.neighbors.ids[0] == i and r.neighbors.scores[0] < 1e-4
    return found


def test_writes_are_served_and_survive_a_restart(tmp_path):
    x = exact_index(tmp_path / "index")
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert info.writable and info.size == 200 and info.last_sequence == 0
            new = np.full((2, DIM), 7.0, np.float32)
            new[1] += 1
            r1 = upsert(stub, [1000, 5], new)           # one new id, one replaced
            r2 = delete(stub, [3, 4, 99999])           # 99999 is not held: ignored
            assert (r1.sequence, r2.sequence, r2.deleted) == (1, 2, 2)
            ids = stub.Search(pb.SearchRequest(index="w", query=to_matrix(new[0])), timeout=30).neighbors.ids
            assert ids[0] == 1000
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert (info.size, info.wal_records, info.last_sequence) == (199, 2, 2) and info.wal_bytes > 0
    finally:
        server.kill()  # kill -9: only the log has the writes
    assert not (tmp_path / "data" / "w" / SNAPSHOT).exists()
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert (info.size, info.last_sequence) == (199, 2)
            assert served_state(stub, [1000, 5], {1000: new[0], 5: new[1]}) == {1000: True, 5: True}
            assert served_state(stub, [3, 4], {3: x[3], 4: x[4]}) == {3: False, 4: False}
            assert upsert(stub, [6], x[:1]).sequence == 3  # sequence numbers go on
    finally:
        assert server.terminate() == 0  # SIGTERM: a final snapshot truncates the log
    assert (tmp_path / "data" / "w" / SNAPSHOT).is_dir()
    assert WriteAheadLog(tmp_path / "data" / "w").snapshot_marker()["sequence"] == 3
    saved = annlib.load(tmp_path / "data" / "w" / SNAPSHOT)
    assert saved.size() == 199 and not saved.contains(3) and np.array_equal(saved.vectors([6])[0], x[0])


def test_bad_writes_are_refused_and_change_nothing(tmp_path):
    exact_index(tmp_path / "index")
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            bad = [
                pb.UpsertRequest(index="w", ids=[1, 2], vectors=to_matrix(np.ones((1, DIM)))),
                pb.UpsertRequest(index="w", ids=[1], vectors=to_matrix(np.ones((1, DIM + 1)))),
                pb.UpsertRequest(index="w", ids=[1, 1], vectors=to_matrix(np.ones((2, DIM)))),
                pb.UpsertRequest(index="w", ids=[-1], vectors=to_matrix(np.ones((1, DIM)))),
                pb.UpsertRequest(index="w", ids=[1], vectors=to_matrix(np.full((1, DIM), np.nan))),
                pb.UpsertRequest(index="w", ids=[], vectors=to_matrix(np.ones((1, DIM)))),
                pb.UpsertRequest(index="w", ids=[1], vectors=pb.Matrix(shape=[1, DIM], data=b"\0" * 4 * DIM,
                                                                       values=[0.0] * DIM)),
            ]
            for request in bad:
                with pytest.raises(grpc.RpcError) as info:
                    stub.Upsert(request, timeout=30)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
            with pytest.raises(grpc.RpcError) as info:
                stub.Upsert(pb.UpsertRequest(index="nope", ids=[1], vectors=to_matrix(np.ones((1, DIM)))))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert (info.size, info.last_sequence, info.wal_records) == (200, 0, 0)
    finally:
        assert server.terminate() == 0


def test_a_server_without_data_dir_is_read_only(tmp_path):
    exact_index(tmp_path / "index")
    server = ServerProcess("--index", f"w={tmp_path / 'index'}")
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                upsert(stub, [1], np.ones((1, DIM)))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--data-dir" in info.value.details()
            assert not stub.DescribeIndex(pb.DescribeIndexRequest(index="w")).writable
    finally:
        assert server.terminate() == 0


def test_a_torn_log_tail_is_dropped_and_the_rest_replayed(tmp_path):
    exact_index(tmp_path / "index")
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            for i in range(3):
                upsert(stub, [500 + i], np.full((1, DIM), i, np.float32))
    finally:
        server.kill()
    segment = WriteAheadLog(tmp_path / "data" / "w").segments()[-1]
    with open(segment, "ab") as f:
        f.write(b"\x40\x00\x00\x00garbage")  # a record cut short by the crash
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            info = rpc.SearchServiceStub(channel).DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert (info.size, info.last_sequence) == (203, 3)
    finally:
        server.kill()
    # Damage before the end of the log is not a torn write: the server refuses to guess.
    first = WriteAheadLog(tmp_path / "data" / "w").segments()[0]
    data = bytearray(first.read_bytes())
    data[12] ^= 0xFF
    first.write_bytes(bytes(data))
    extra = WriteAheadLog(tmp_path / "data" / "w").segments()
    assert len(extra) >= 2, "each start writes to a new segment"
    with pytest.raises(RuntimeError, match="write-ahead log"):
        start(tmp_path)


def test_group_commit_shares_fsyncs_and_keeps_every_write(tmp_path):
    exact_index(tmp_path / "index")
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            results = {}

            def writer(t):
                for j in range(20):
                    i = 10_000 + t * 100 + j
                    results[i] = upsert(stub, [i], np.full((1, DIM), i, np.float32)).sequence

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results.values()) == list(range(1, 161))  # every write once, in one order
            assert stub.DescribeIndex(pb.DescribeIndexRequest(index="w")).size == 360
    finally:
        server.kill()
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            assert rpc.SearchServiceStub(channel).DescribeIndex(pb.DescribeIndexRequest(index="w")).size == 360
    finally:
        assert server.terminate() == 0


def test_snapshots_truncate_the_log(tmp_path):
    exact_index(tmp_path / "index")
    server = start(tmp_path, "--snapshot-seconds", "0.5")
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            upsert(stub, [777], np.ones((1, DIM), np.float32))
            deadline = time.monotonic() + 30
            while stub.DescribeIndex(pb.DescribeIndexRequest(index="w")).wal_records and time.monotonic() < deadline:
                time.sleep(0.1)
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="w"))
            assert info.wal_records == 0 and info.last_snapshot_unix_s > 0 and info.last_sequence == 1
    finally:
        server.kill()
    assert annlib.load(tmp_path / "data" / "w" / SNAPSHOT).contains(777)


def test_acknowledged_writes_survive_kill_9_at_random_moments(tmp_path):
    """A client streams upserts and deletes (from 4 threads, on disjoint ids) while the
    server, taking snapshots all the while, is killed -9 at random moments, again and again. After each restart every
    acknowledged write is served, and a write in flight at the kill is there whole or
    not at all (all its ids as before it, or all as after it)."""
    rng = np.random.default_rng(1)
    exact_index(tmp_path / "index", n=50)
    expected = {}      # id -> vector (held) or None (not held), after the acknowledged writes
    in_flight = {}     # thread -> (before, after) of the write it had sent when the server died
    lock = threading.Lock()
    acknowledged = 0
    iterations = 6
    for iteration in range(iterations):
        # Snapshots every 0.2 s: some kills land while one is written, or between the
        # snapshot and its marker (the log then replays over a state that has its writes).
        server = start(tmp_path, "--snapshot-seconds", "0.2")
        with server.channel() as channel, killed_at_exit(server):
            stub = rpc.SearchServiceStub(channel)
            check_state(stub, expected, in_flight.values())
            for before, after in in_flight.values():  # settle what the server kept
                kept = after if all(holds(stub, i, v) for i, v in after.items()) else before
                expected.update(kept)
            in_flight.clear()
            stop = threading.Event()

            def client(t, seed):
                nonlocal acknowledged
                local = np.random.default_rng(seed)
                while not stop.is_set():
                    ids = [int(i) for i in local.choice(np.arange(1000 + t, 1400, 4), size=local.integers(1, 4),
                                                        replace=False)]
                    is_upsert = local.random() < 0.7
                    vectors = local.standard_normal((len(ids), DIM)).astype(np.float32)
                    with lock:
                        before = {i: expected.get(i) for i in ids}
                    after = dict(zip(ids, vectors)) if is_upsert else dict.fromkeys(ids)
                    in_flight[t] = (before, after)
                    try:
                        upsert(stub, ids, vectors) if is_upsert else delete(stub, ids)
                    except grpc.RpcError:
                        return  # the server died: the outcome is checked after the restart
                    with lock:
                        expected.update(after)
                        del in_flight[t]
                        acknowledged += 1

            threads = [threading.Thread(target=client, args=(t, 100 * iteration + t)) for t in range(4)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            stop.set()
            for t in threads:
                t.join()
    server = start(tmp_path)
    try:
        with server.channel() as channel:
            check_state(rpc.SearchServiceStub(channel), expected, in_flight.values())
    finally:
        assert server.terminate() == 0
    assert acknowledged > 50, f"only {acknowledged} writes were acknowledged in {iterations} runs"
    snapshots = (tmp_path / "data" / "w" / SNAPSHOT).is_dir()
    assert snapshots, "no snapshot was taken during the loop"
    print(f"kill -9 loop: {iterations} kills, {acknowledged} writes acknowledged, all found")


@contextlib.contextmanager
def killed_at_exit(server):
    try:
        yield
    finally:
        server.kill()


def check_state(stub, expected, in_flight):
    """Every acknowledged write is served; each in-flight one is wholly before or after."""
    unsure = {i for before, _ in in_flight for i in before}
    for i, vector in expected.items():
        if i not in unsure:
            assert holds(stub, i, vector), f"acknowledged write of id {i} lost"
    for before, after in in_flight:
        assert (all(holds(stub, i, v) for i, v in before.items())
                or all(holds(stub, i, v) for i, v in after.items())), f"write to {list(after)} half-applied"


def holds(stub, i, vector) -> bool:
    """Whether the server holds id i with exactly this vector (vector None: holds no id i)."""
    if vector is None:
        r = stub.Search(pb.SearchRequest(index="w", query=to_matrix(np.zeros(DIM, np.float32)),
                                         options=pb.SearchOptions(final_num_neighbors=1,
                                                                  allowlist=pb.IdList(ids=[i]))), timeout=30)
        return r.neighbors.ids[0] != i
    r = stub.Search(pb.SearchRequest(index="w", query=to_matrix(vector),
                                     options=pb.SearchOptions(final_num_neighbors=3)), timeout=30)
    # 0 up to rounding: the engine scores squared L2 as |q|^2 - 2 q.x + |x|^2
    return any(j == i and s < 1e-4 for j, s in zip(r.neighbors.ids, r.neighbors.scores))


def test_searches_and_writes_race_on_a_quantized_index(tmp_path):
    """Batched Search RPCs from three clients while a fourth upserts and deletes: the
    quantized index's searches hold its lock while the writes wait for it, in the server's
    worker threads. Every call answers (none hangs: each has a deadline), and no deleted id
    comes back."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, DIM)).astype(np.float32)
    (annlib.builder(x, 10, "squared_l2").tree(30, 10).score_ah(1).reorder(100).build(progress=False)
     .save(tmp_path / "index"))
    queries = rng.standard_normal((4000, DIM)).astype(np.float32)  # calls long enough to poll
    server = start(tmp_path)
    deleted, counts, lock = set(), {"searches": 0, "writes": 0}, threading.Lock()
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)

            def searcher(stop):
                while not stop.is_set():
                    with lock:
                        gone = set(deleted)
                    r = stub.SearchBatch(pb.SearchBatchRequest(
                        index="w", queries=to_matrix(queries),
                        options=pb.SearchOptions(final_num_neighbors=10, leaves_to_search=30,
                                                 pre_reorder_num_neighbors=100)), timeout=30)
                    ids = {i for result in r.results for i in result.ids}
                    assert not ids & gone, "a deleted id came back"
                    counts["searches"] += 1

            def writer(stop):
                next_id = 10_000
                while not stop.is_set():
                    upsert(stub, range(next_id, next_id + 20), rng.standard_normal((20, DIM)).astype(np.float32))
                    victims = list(range(next_id - 20, next_id - 10)) if next_id > 10_000 else list(range(10))
                    delete(stub, victims)
                    with lock:
                        deleted.update(victims)
                    next_id += 20
                    counts["writes"] += 1

            errors = run_threads([searcher, searcher, searcher, writer], 3.0)
    finally:
        assert server.terminate() == 0
    assert not errors, errors[0]
    assert counts["searches"] >= 3 and counts["writes"] >= 3, counts
