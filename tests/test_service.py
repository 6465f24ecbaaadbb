"""The gRPC service, end to end: a real server in a subprocess on loopback,
called with the generated client and with a reflection-based client."""
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import annlib
from annlib.service.codec import from_matrix, to_matrix
from annlib.v1 import messages_pb2 as pb
from annlib.v1 import service_pb2_grpc as rpc
from conftest import clustered
from service_client import ServerProcess
from test_multivector import query_for, synthetic_corpus

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Three saved indexes (quantized, brute force, multi-vector) and their data."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("indexes")
    db, queries = clustered(rng, 3000, 32, nq=50)
    vec = (annlib.builder(db, 10, "dot_product").tree(30, 6).score_ah(2).reorder(50).build(progress=False))
    vec.save(root / "vec")
    exact = annlib.builder(db, 10, "squared_l2").score_brute_force().build()
    exact.save(root / "exact")
    pooled, tokens, offsets, centers = synthetic_corpus(rng)
    mv = annlib.MultiVectorIndex.build(pooled, tokens, offsets, progress=False)
    mv.save(root / "mv")
    return {"root": root, "vec": annlib.load(root / "vec"), "exact": annlib.load(root / "exact"),
            "mv": annlib.load(root / "mv"), "queries": queries, "centers": centers, "rng": rng}


@pytest.fixture(scope="module")
def server(saved):
    root = saved["root"]
    proc = ServerProcess("--index", f"vec={root / 'vec'}", "--index", f"exact={root / 'exact'}",
                         "--index", f"mv={root / 'mv'}", "--enable-admin", "--max-message-mb", "1")
    yield proc
    assert proc.terminate() == 0


@pytest.fixture(scope="module")
def stub(server):
    with server.channel() as channel:
        yield rpc.SearchServiceStub(channel)


@pytest.fixture(scope="module")
def admin(server):
    with server.channel() as channel:
        yield rpc.AdminServiceStub(channel)


def status_of(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def health_status(channel, service=""):
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


# -- every RPC ------------------------------------------------------------------

def test_list_and_describe_indexes(stub, saved):
    infos = {i.name: i for i in stub.ListIndexes(pb.ListIndexesRequest()).indexes}
    assert set(infos) >= {"vec", "exact", "mv"}
    assert (infos["vec"].kind, infos["vec"].size, infos["vec"].dim) == ("quantized", 3000, 32)
    assert (infos["exact"].kind, infos["exact"].distance_measure) == ("brute_force", "squared_l2")
    mv = stub.DescribeIndex(pb.DescribeIndexRequest(index="mv"))
    assert (mv.kind, mv.token_dtype, mv.bytes_per_token) == ("multivector", "float16", 2 * 48)
    assert mv.num_tokens == saved["mv"].num_tokens and '"kind": "multivector"' in mv.config_json


def test_search_matches_the_library(stub, saved):
    for q in saved["queries"][:10]:
        for name in ("vec", "exact"):
            got = stub.Search(pb.SearchRequest(index=name, query=to_matrix(q))).neighbors
            ids, scores = saved[name].search(q)
            np.testing.assert_array_equal(got.ids, ids)
            np.testing.assert_allclose(got.scores, scores, rtol=1e-6)
    q = saved["queries"][0]
    options = pb.SearchOptions(final_num_neighbors=3, leaves_to_search=30, pre_reorder_num_neighbors=200)
    got = stub.Search(pb.SearchRequest(index="vec", query=to_matrix(q[None]), options=options)).neighbors
    ids, _ = saved["vec"].search(q, 3, 200, 30)
    np.testing.assert_array_equal(got.ids, ids)


def test_search_batch_matches_the_library(stub, saved):
    queries = saved["queries"]
    got = stub.SearchBatch(pb.SearchBatchRequest(index="vec", queries=to_matrix(queries),
                                                 options=pb.SearchOptions(final_num_neighbors=5)))
    ids, scores = saved["vec"].search_batched(queries, 5)
    assert len(got.results) == len(queries)
    np.testing.assert_array_equal(np.array([r.ids for r in got.results]), ids)
    np.testing.assert_allclose(np.array([r.scores for r in got.results]), scores, rtol=1e-6)


def test_filtered_search_matches_the_library(stub, saved):
    q = saved["queries"]
    allow, deny = np.arange(0, 3000, 4), np.arange(0, 3000, 12)
    options = pb.SearchOptions(final_num_neighbors=5, allowlist=pb.IdList(ids=allow.tolist()),
                               denylist=pb.IdList(ids=deny.tolist()))
    for name in ("vec", "exact"):
        reply = stub.SearchBatch(pb.SearchBatchRequest(index=name, queries=to_matrix(q), options=options))
        ids = np.array([list(r.ids) for r in reply.results])
        want = saved[name].search_batched(q, final_num_neighbors=5, allowlist=allow, denylist=deny)[0]
        np.testing.assert_array_equal(ids, want)
        assert np.isin(ids, allow).all() and not np.isin(ids, deny).any()
        one = stub.Search(pb.SearchRequest(index=name, query=to_matrix(q[0]), options=options))
        np.testing.assert_array_equal(list(one.neighbors.ids), want[0])
    # An empty allowlist is set (nothing allowed), not absent.
    empty = stub.Search(pb.SearchRequest(index="vec", query=to_matrix(q[0]),
                                         options=pb.SearchOptions(allowlist=pb.IdList())))
    assert set(empty.neighbors.ids) == {-1}


def test_rerank_and_search_and_rerank_match_the_library(stub, saved):
    mv, rng = saved["mv"], saved["rng"]
    qv, qt = query_for(rng, saved["centers"])
    cands = rng.permutation(mv.size())[:40]
    got = stub.Rerank(pb.RerankRequest(index="mv", query_tokens=to_matrix(qt), candidate_ids=cands, k=7)).neighbors
    ids, scores = mv.rerank(qt, cands, 7)
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6)
    options = pb.SearchOptions(final_num_neighbors=5, num_candidates=30)
    got = stub.SearchAndRerank(pb.SearchAndRerankRequest(index="mv", query=to_matrix(qv), query_tokens=to_matrix(qt),
                                                         options=options)).neighbors
    np.testing.assert_array_equal(got.ids, mv.search(qv, qt, 5, 30)[0])
    tokens_only = stub.SearchAndRerank(pb.SearchAndRerankRequest(index="mv", query_tokens=to_matrix(qt))).neighbors
    np.testing.assert_array_equal(tokens_only.ids, mv.search(None, qt, 10, 100)[0])
    # Search on a multi-vector index searches its pooled document vectors.
    pooled = stub.Search(pb.SearchRequest(index="mv", query=to_matrix(qv))).neighbors
    np.testing.assert_array_equal(pooled.ids, mv.documents.search(qv)[0])


def test_admin_load_replace_unload(server, stub, admin, saved):
    path = str(saved["root"] / "exact")
    info = admin.LoadIndex(pb.LoadIndexRequest(name="extra", path=path)).index
    assert (info.name, info.kind) == ("extra", "brute_force")
    assert status_of(admin.LoadIndex, pb.LoadIndexRequest(name="extra", path=path))[0] == \
        grpc.StatusCode.ALREADY_EXISTS
    admin.LoadIndex(pb.LoadIndexRequest(name="extra", path=str(saved["root"] / "vec"), replace=True))
    assert stub.DescribeIndex(pb.DescribeIndexRequest(index="extra")).kind == "quantized"
    admin.UnloadIndex(pb.UnloadIndexRequest(name="extra"))
    assert status_of(stub.DescribeIndex, pb.DescribeIndexRequest(index="extra"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = status_of(admin.LoadIndex, pb.LoadIndexRequest(name="bad", path=str(saved["root"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cannot load" in details
    assert status_of(admin.UnloadIndex, pb.UnloadIndexRequest(name="nope"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = status_of(admin.LoadIndex, pb.LoadIndexRequest(name="bad name!", path=path))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "letters, digits" in details
    admin.LoadIndex(pb.LoadIndexRequest(name="2026-11.v2", path=path))
    admin.UnloadIndex(pb.UnloadIndexRequest(name="2026-11.v2"))


# -- every error code -------------------------------------------------------------

def test_bad_requests_are_invalid_argument(stub, saved):
    q = saved["queries"][0]
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    bad = {
        "wrong dimension": pb.SearchRequest(index="vec", query=to_matrix(q[:10])),
        "NaN": pb.SearchRequest(index="vec", query=to_matrix(np.full(32, np.nan, np.float32))),
        "bytes vs shape": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[32], data=b"\0" * 12)),
        "3-D": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[1, 1, 32], data=b"\0" * 128)),
        "empty shape": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[0], data=b"")),
        "negative shape": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[-32], data=b"\0" * 128)),
        "data and values": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[32], data=b"\0" * 128,
                                                                          values=[0.0] * 32)),
        "values vs shape": pb.SearchRequest(index="vec", query=pb.Matrix(shape=[32], values=[0.0] * 31)),
        "missing query": pb.SearchRequest(index="vec"),
        "k too large": pb.SearchRequest(index="vec", query=to_matrix(q),
                                        options=pb.SearchOptions(final_num_neighbors=10**6)),
        "k zero": pb.SearchRequest(index="vec", query=to_matrix(q), options=pb.SearchOptions(final_num_neighbors=0)),
        "leaves too many": pb.SearchRequest(index="vec", query=to_matrix(q),
                                            options=pb.SearchOptions(leaves_to_search=31)),
        "knob on brute force": pb.SearchRequest(index="exact", query=to_matrix(q),
                                                options=pb.SearchOptions(leaves_to_search=3)),
        "num_candidates on single-vector": pb.SearchRequest(index="vec", query=to_matrix(q),
                                                            options=pb.SearchOptions(num_candidates=50)),
        "two queries in Search": pb.SearchRequest(index="vec", query=to_matrix(saved["queries"][:2])),
    }
    for what, request in bad.items():
        code, details = status_of(stub.Search, request)
        assert code == invalid and details, what
    qt = query_for(saved["rng"], saved["centers"])[1]
    for request in (pb.RerankRequest(index="mv", query_tokens=to_matrix(qt), candidate_ids=[1, 1]),
                    pb.RerankRequest(index="mv", query_tokens=to_matrix(qt), candidate_ids=[10**9]),
                    pb.RerankRequest(index="mv", query_tokens=to_matrix(qt[:, :5]), candidate_ids=[1])):
        assert status_of(stub.Rerank, request)[0] == invalid
    code, details = status_of(stub.SearchAndRerank, pb.SearchAndRerankRequest(
        index="mv", query_tokens=to_matrix(qt), options=pb.SearchOptions(allowlist=pb.IdList(ids=[1]))))
    assert code == invalid and "single-vector" in details


def test_huge_knobs_are_bounded_and_the_server_survives(stub, saved):
    """pre_reorder_num_neighbors = 2**31-1 once sized the candidate buffer by a wrapped
    int32 and killed the server with SIGSEGV; now it means 'every candidate found'."""
    q = saved["queries"][0]
    code, details = status_of(stub.Search, pb.SearchRequest(index="vec", query=to_matrix(q), options=pb.SearchOptions(
        pre_reorder_num_neighbors=2**31 - 1)))  # over the server's --max-candidates: refused, not clamped
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "--max-candidates" in details
    # Within the server's limit but beyond the index's 3000 points: every candidate found.
    huge = pb.SearchOptions(pre_reorder_num_neighbors=16384, leaves_to_search=30)
    for _ in range(3):
        got = stub.Search(pb.SearchRequest(index="vec", query=to_matrix(q), options=huge)).neighbors
        np.testing.assert_array_equal(got.ids, saved["vec"].search(q, 10, 3000, 30)[0])
    batch = stub.SearchBatch(pb.SearchBatchRequest(index="vec", queries=to_matrix(saved["queries"]), options=huge))
    want = saved["vec"].search_batched(saved["queries"], 10, 3000, 30)[0]
    np.testing.assert_array_equal(np.array([r.ids for r in batch.results]), want)
    code, _ = status_of(stub.Search, pb.SearchRequest(
        index="vec", query=to_matrix(q), options=pb.SearchOptions(leaves_to_search=2**31 - 1)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.ListIndexes(pb.ListIndexesRequest()).indexes  # still serving


def test_not_found_failed_precondition_and_resource_exhausted(stub, admin, saved):
    q = to_matrix(saved["queries"][0])
    code, details = status_of(stub.Search, pb.SearchRequest(index="missing", query=q))
    assert code == grpc.StatusCode.NOT_FOUND and "vec" in details
    qt = to_matrix(query_for(saved["rng"], saved["centers"])[1])
    assert status_of(stub.Rerank, pb.RerankRequest(index="vec", query_tokens=qt, candidate_ids=[1]))[0] == \
        grpc.StatusCode.FAILED_PRECONDITION
    big = np.zeros((20_000, 32), np.float32)  # 2.5 MB request over a 1 MiB limit
    assert status_of(stub.SearchBatch, pb.SearchBatchRequest(index="vec", queries=to_matrix(big)))[0] == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
    many = np.ones((5000, 32), np.float32)  # 640 kB request, but 5000 x 20 results would exceed 1 MiB
    code, details = status_of(stub.SearchBatch, pb.SearchBatchRequest(
        index="vec", queries=to_matrix(many), options=pb.SearchOptions(final_num_neighbors=20)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "fewer queries" in details


def test_admin_disabled_is_permission_denied(saved):
    proc = ServerProcess("--index", f"vec={saved['root'] / 'vec'}")
    try:
        with proc.channel() as channel:
            admin = rpc.AdminServiceStub(channel)
            code, _ = status_of(admin.LoadIndex, pb.LoadIndexRequest(name="x", path=str(saved["root"] / "vec")))
            assert code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        assert proc.terminate() == 0


def test_deadline_is_honoured(server, stub, saved):
    request = pb.SearchRequest(index="vec", query=to_matrix(saved["queries"][0]))
    code, _ = status_of(stub.Search, request, timeout=0.2, metadata=[("x-test-delay-ms", "600")])
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.5)
    assert stub.Search(request, timeout=10).neighbors.ids  # the server is still fine


def test_deadline_stops_the_work_itself(tmp_path, rng):
    """A SearchBatch worth seconds of exact search with a 0.3 s deadline: the library call
    stops when the deadline passes (annlib.time_limit), so DEADLINE_EXCEEDED comes back
    at once and the cores are free for the next call."""
    x = rng.standard_normal((100_000, 128)).astype(np.float32)
    annlib.builder(x, 10, "dot_product").score_brute_force().build().save(tmp_path / "big")
    queries = rng.standard_normal((64_000, 128)).astype(np.float32)  # 8e11 multiply-adds
    proc = ServerProcess("--index", f"big={tmp_path / 'big'}", "--max-batch", "100000")
    try:
        with proc.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            start = time.monotonic()
            code, _ = status_of(stub.SearchBatch, pb.SearchBatchRequest(index="big", queries=to_matrix(queries)),
                                timeout=0.3)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            small = pb.SearchBatchRequest(index="big", queries=to_matrix(queries[:8]))
            assert len(stub.SearchBatch(small, timeout=30).results) == 8
            # Uninterrupted, the batch alone takes about 10 s on a 2-core machine.
            assert time.monotonic() - start < 3.5
    finally:
        assert proc.terminate() == 0


def test_concurrent_calls_all_succeed_and_agree(stub, saved):
    queries = saved["queries"]
    expected = saved["vec"].search_batched(queries)[0]
    errors = []

    def client(offset):
        try:
            for i in range(offset, len(queries), 8):
                got = stub.Search(pb.SearchRequest(index="vec", query=to_matrix(queries[i])), timeout=30)
                assert list(got.neighbors.ids) == expected[i].tolist()
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- reflection -------------------------------------------------------------------

def test_reflection_client_discovers_and_calls_search(server, saved):
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with server.channel() as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"annlib.v1.SearchService", "annlib.v1.AdminService", "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("annlib.v1.SearchService").methods_by_name["Search"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        q = saved["queries"][3].astype("<f4")
        request = request_cls(index="vec")
        request.query.shape.append(32)
        request.query.data = q.tobytes()
        call = channel.unary_unary("/annlib.v1.SearchService/Search", request_serializer=request_cls.SerializeToString,
                                   response_deserializer=response_cls.FromString)
        response = call(request, timeout=10)
    np.testing.assert_array_equal(list(response.neighbors.ids), saved["vec"].search(q)[0])


# -- health, shutdown -------------------------------------------------------------

def test_health_not_serving_until_an_index_is_loaded(saved):
    proc = ServerProcess("--enable-admin")
    try:
        with proc.channel() as channel:
            assert health_status(channel) == NOT_SERVING
            assert health_status(channel, "annlib.v1.SearchService") == NOT_SERVING
            admin = rpc.AdminServiceStub(channel)
            admin.LoadIndex(pb.LoadIndexRequest(name="vec", path=str(saved["root"] / "vec")))
            assert health_status(channel) == SERVING
            admin.UnloadIndex(pb.UnloadIndexRequest(name="vec"))
            assert health_status(channel) == NOT_SERVING
    finally:
        assert proc.terminate() == 0


def test_sigterm_drains_finishes_running_calls_and_exits_zero(saved):
    proc = ServerProcess("--index", f"vec={saved['root'] / 'vec'}", "--drain-seconds", "1.5")
    q = saved["queries"][0]
    expected = saved["vec"].search(q)[0]
    result = {}
    with proc.channel() as channel:
        stub = rpc.SearchServiceStub(channel)
        assert health_status(channel) == SERVING

        def slow_call():
            try:
                result["response"] = stub.Search(pb.SearchRequest(index="vec", query=to_matrix(q)), timeout=30,
                                                 metadata=[("x-test-delay-ms", "2500")])
            except grpc.RpcError as exc:
                result["error"] = exc

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.5)  # the call is now sleeping inside the server
        proc.send_sigterm()
        proc.wait_for("shutting down")
        assert health_status(channel) == NOT_SERVING  # draining: still answering, reporting NOT_SERVING
        caller.join(30)
        assert "error" not in result, result.get("error")
        np.testing.assert_array_equal(result["response"].neighbors.ids, expected)
    assert proc.terminate() == 0
    with grpc.insecure_channel(proc.address) as channel:  # nothing listens any more
        code, _ = status_of(rpc.SearchServiceStub(channel).Search,
                            pb.SearchRequest(index="vec", query=to_matrix(q)), timeout=2)
        assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_failed_index_load_at_start_exits_nonzero(tmp_path):
    proc = ServerProcess("--index", f"x={tmp_path}", wait_until_serving=False)
    assert proc.proc.wait(60) == 2
    assert "cannot load" in proc.stderr()


# -- auth and TLS -----------------------------------------------------------------

def test_bearer_token_auth(saved, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    proc = ServerProcess("--index", f"vec={saved['root'] / 'vec'}", "--auth-token-file", str(token_file))
    request = pb.SearchRequest(index="vec", query=to_matrix(saved["queries"][0]))
    try:
        with proc.channel() as channel:
            stub = rpc.SearchServiceStub(channel)
            code, details = status_of(stub.Search, request, timeout=10)
            assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in details
            code, _ = status_of(stub.Search, request, timeout=10, metadata=[("authorization", "Bearer wrong")])
            assert code == grpc.StatusCode.UNAUTHENTICATED
            ok = stub.Search(request, timeout=10, metadata=[("authorization", "Bearer s3cret-token")])
            assert len(ok.neighbors.ids) == 10
            assert health_status(channel) == SERVING  # probes need no token
    finally:
        assert proc.terminate() == 0


def test_tls(saved, tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    proc = ServerProcess("--index", f"vec={saved['root'] / 'vec'}", "--tls-cert", str(cert), "--tls-key", str(key))
    request = pb.SearchRequest(index="vec", query=to_matrix(saved["queries"][0]))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{proc.port}", credentials) as channel:
            assert len(rpc.SearchServiceStub(channel).Search(request, timeout=10).neighbors.ids) == 10
        with proc.channel() as plaintext:
            assert status_of(rpc.SearchServiceStub(plaintext).Search, request, timeout=5)[0] == \
                grpc.StatusCode.UNAVAILABLE
    finally:
        assert proc.terminate() == 0


def test_annlib_serve_command_line(saved):
    import sys
    from pathlib import Path

    # The console script pip installed beside this interpreter: what a user runs.
    script = Path(sys.executable).parent / "annlib"
    assert script.is_file(), f"{script} is missing: is annlib installed in this environment?"
    proc = ServerProcess("--index", f"vec={saved['root'] / 'vec'}", command=[str(script), "serve"])
    try:
        with proc.channel() as channel:
            assert health_status(channel) == SERVING
    finally:
        assert proc.terminate() == 0


def test_matrix_codec_round_trip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(from_matrix(to_matrix(a), "a"), a)
    assert to_matrix(a).data == a.astype("<f4").tobytes()


def test_a_binned_brute_force_index_is_served_with_its_screen_made(tmp_path, rng):
    """A binned brute-force index makes its screen (an int8 copy and a check on a sample) at
    its first search; the server makes it as it loads the index, so no request pays for it."""
    from annlib.service.loading import open_index

    x = rng.standard_normal((5000, 32)).astype(np.float32)
    annlib.builder(x, 10, "dot_product").score_brute_force(recall_target=0.9).build().save(tmp_path / "idx")
    assert annlib.load(tmp_path / "idx")._state.index.screen_decision() == -1  # a plain load: at first use
    screens = bool(set(annlib.available_simd_levels()) & {"avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16"})  # x86 kernels
    assert (open_index(tmp_path / "idx")._state.index.screen_decision() != -1) == screens
