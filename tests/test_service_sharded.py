"""The gRPC service hosting a sharded index (annlib.distributed): the server is its
coordinator, on a local Ray instance it starts itself or, with a ray:// location, on a
running Ray cluster it joins as a client. A real server in a subprocess on loopback;
searches match one index over the same points; writes over RPC reach the shards and
outlive a restart (the log replays into the sharded snapshot)."""
import os
import socket

import numpy as np
import pytest

import annlib
from annlib.service.codec import to_matrix
from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc
from service_client import ServerProcess

ray = pytest.importorskip("ray", reason="Ray has no wheel for this platform")
cluster_utils = pytest.importorskip("ray.cluster_utils")
dist = pytest.importorskip("annlib.distributed")

DIM = 16
# "local": the server starts its own Ray instance even while another test's cluster on
# this machine is still shutting down (ray.init would otherwise try to join that one).
LOCAL_RAY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": "local"}


def stages(x):
    return annlib.builder(x, 10, "dot_product").tree(20, 5, soar_lambda=1.0).score_ah(2, 0.2).reorder(30)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, neutral_cwd):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, DIM)).astype(np.float32)
    root = tmp_path_factory.mktemp("sharded")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        sharded = dist.build(stages(x), num_shards=3, progress=False)
        sharded.save(root / "index")
        sharded.shutdown()
    finally:
        ray.shutdown()
    return {"root": root, "x": x, "single": stages(x).build(progress=False),
            "queries": rng.standard_normal((40, DIM)).astype(np.float32)}


def batch(stub, queries, **options):
    reply = stub.SearchBatch(pb.SearchBatchRequest(index="s", queries=to_matrix(queries),
                                                   options=pb.SearchOptions(**options)), timeout=60)
    return np.array([list(r.ids) for r in reply.results]), np.array([list(r.scores) for r in reply.results])


def test_a_server_coordinates_a_sharded_index(saved, tmp_path):
    single, queries = saved["single"], saved["queries"]
    server = ServerProcess("--index", f"s={saved['root'] / 'index'}", "--data-dir", str(tmp_path / "data"),
                           env=LOCAL_RAY)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            info = stub.DescribeIndex(pb.DescribeIndexRequest(index="s"), timeout=30)
            assert info.kind == "sharded" and info.size == 4000 and info.writable and info.num_leaves == 20
            ids, scores = batch(stub, queries)
            want_ids, want_scores = single.search_batched(queries)
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
            allow = np.arange(0, 4000, 3)
            ids, _ = batch(stub, queries, final_num_neighbors=5, allowlist=pb.IdList(ids=allow.tolist()))
            np.testing.assert_array_equal(ids, single.search_batched(queries, 5, allowlist=allow)[0])
            one = stub.Search(pb.SearchRequest(index="s", query=to_matrix(queries[0])), timeout=30)
            np.testing.assert_array_equal(list(one.neighbors.ids), want_ids[0])
            # Writes over RPC: logged, applied to the shards, served.
            new = np.random.default_rng(9).standard_normal((30, DIM)).astype(np.float32)
            new_ids = list(range(10_000, 10_030))
            stub.Upsert(pb.UpsertRequest(index="s", ids=new_ids, vectors=to_matrix(new)), timeout=60)
            stub.Delete(pb.DeleteRequest(index="s", ids=list(range(100, 200))), timeout=60)
            single.upsert(np.array(new_ids), new)
            single.delete(np.arange(100, 200))
            np.testing.assert_array_equal(batch(stub, queries)[0], single.search_batched(queries)[0])
            np.testing.assert_array_equal(batch(stub, new)[0], single.search_batched(new)[0])
    finally:
        assert server.terminate() == 0
    # The server's shutdown snapshotted the sharded index into its data directory.
    assert dist.is_sharded(tmp_path / "data" / "s" / "snapshot")
    server = ServerProcess("--index", f"s={saved['root'] / 'index'}", "--data-dir", str(tmp_path / "data"),
                           env=LOCAL_RAY)
    try:
        with server.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            assert stub.DescribeIndex(pb.DescribeIndexRequest(index="s"), timeout=30).size == len(single)
            np.testing.assert_array_equal(batch(stub, queries)[0], single.search_batched(queries)[0])
    finally:
        assert server.terminate() == 0


def test_a_sharded_index_is_served_by_one_process(saved):
    with pytest.raises(RuntimeError, match="one coordinator process"):
        ServerProcess("--index", f"s={saved['root'] / 'index'}", "--processes", "2", env=LOCAL_RAY)


def test_a_ray_url_serves_an_index_on_a_running_cluster(saved, neutral_cwd):
    single, queries = stages(saved["x"]).build(progress=False), saved["queries"]  # the saved one, unchanged
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        client_port = probe.getsockname()[1]
    # The head on this machine's own interface (with it on 127.0.0.1, Ray Client's
    # per-connection server timed out reaching its GCS).
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": False,
        "ray_client_server_port": client_port})
    try:
        location = f"s=ray://127.0.0.1:{client_port}{saved['root'] / 'index'}"
        server = ServerProcess("--index", location, env=LOCAL_RAY)
        try:
            with server.channel() as channel:
                stub = rpc.SearchServiceStub(channel)
                assert stub.DescribeIndex(pb.DescribeIndexRequest(index="s"), timeout=30).kind == "sharded"
                ids, scores = batch(stub, queries)
                want_ids, want_scores = single.search_batched(queries)
                np.testing.assert_array_equal(ids, want_ids)
                np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
            # The shards are actors of that cluster (not of a Ray the server started itself).
            ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
            try:
                alive = [actor for actor in ray._private.state.actors().values()
                         if actor["State"] == "ALIVE" and actor["ActorClassName"].endswith("Shard")]
                assert len(alive) == 3
            finally:
                ray.shutdown()
        finally:
            assert server.terminate() == 0
    finally:
        cluster.shutdown()


def test_bad_ray_urls_are_refused_clearly(saved):
    with pytest.raises(RuntimeError, match="expected ray://HOST:PORT/PATH"):
        ServerProcess("--index", "s=ray://127.0.0.1:1", env=LOCAL_RAY)
    with pytest.raises(RuntimeError, match="holds no sharded index"):
        ServerProcess("--index", f"s=ray://127.0.0.1:1{saved['root']}", env=LOCAL_RAY)
