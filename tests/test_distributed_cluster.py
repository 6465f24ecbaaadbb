"""annlib.distributed on a Ray cluster of several nodes on this machine
(ray.cluster_utils.Cluster, loopback only): shards spread over the nodes, and a
node that goes away takes its shard with it, which is restarted on another node
from the last save."""
from __future__ import annotations

import os

import numpy as np
import pytest

import annlib

ray = pytest.importorskip("ray", reason="Ray has no wheel for this platform")
cluster_utils = pytest.importorskip("ray.cluster_utils")
dist = pytest.importorskip("annlib.distributed")


@pytest.fixture(scope="module")
def cluster(neutral_cwd):
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # One shard per node: each node offers one "shard" resource, which each shard asks for
    # (CPUs stay free for the build's tasks); the fourth node stands by for a restart.
    node_args = {"num_cpus": 1, "include_dashboard": False, "resources": {"shard": 1}}
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args=node_args)
    try:
        workers = [nodes.add_node(**node_args) for _ in range(3)]
        ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
        nodes.wait_for_nodes()
        yield nodes, workers
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_shards_spread_over_nodes_and_survive_a_lost_node(cluster, tmp_path):
    nodes, workers = cluster
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6000, 16)).astype(np.float32)
    q = rng.standard_normal((200, 16)).astype(np.float32)

    def stages():
        return annlib.builder(x, 10, "dot_product").tree(24, 5, soar_lambda=1.0).score_ah(2, 0.2).reorder(30)

    single = stages().build(progress=False)
    sharded = dist.build(stages(), num_shards=3, actor_options={"resources": {"shard": 1}}, progress=False)
    try:
        node_of = [status["node"] for status in ray.get([actor.status.remote() for actor in sharded._actors])]
        assert len(set(node_of)) == 3
        np.testing.assert_array_equal(sharded.search_batched(q)[0], single.search_batched(q)[0])
        sharded.save(tmp_path / "index")  # every node is this machine: the path is shared
        lost = next(worker for worker in workers if worker.node_id in node_of)
        nodes.remove_node(lost)
        ids, scores = sharded.search_batched(q)  # the lost shard restarts on the standby node
        moved = [status["node"] for status in ray.get([actor.status.remote() for actor in sharded._actors])]
        assert lost.node_id not in moved and len(set(moved)) == 3
        expected_ids, expected_scores = single.search_batched(q)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(scores, expected_scores)
    finally:
        sharded.shutdown()
