"""Fuzzing the service's request decoding against a real server on loopback: random
bytes, mutated valid requests and hostile field values for every RPC. Each call must
end with a status code the service documents (never UNKNOWN, the code of an exception
the service did not handle), and the server must keep serving correct answers."""
import random

import grpc
import numpy as np
import pytest

import annlib
from annlib.service.codec import to_matrix
from annlib.v1 import messages_pb2 as pb
from conftest import clustered
from service_client import ServerProcess
from test_multivector import synthetic_corpus

# grpc itself answers INTERNAL for bytes that are no valid message of the request type.
EXPECTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    rng = np.random.default_rng(21)
    root = tmp_path_factory.mktemp("fuzz-indexes")
    db, queries = clustered(rng, 2000, 16, nq=20)
    annlib.builder(db, 10, "squared_l2").tree(20, 4, soar_lambda=1.0).score_ah(2).reorder(40).build(
        progress=False).save(root / "vec")
    annlib.builder(db, 10, "cosine").score_brute_force(0.9).build().save(root / "exact")
    pooled, tokens, offsets, _ = synthetic_corpus(rng)
    annlib.MultiVectorIndex.build(pooled, tokens, offsets, progress=False).save(root / "mv")
    proc = ServerProcess("--index", f"vec={root / 'vec'}", "--index", f"exact={root / 'exact'}",
                         "--index", f"mv={root / 'mv'}", "--max-message-mb", "4")
    yield proc, queries, tokens.shape[1]
    assert proc.terminate() == 0


def valid_requests(queries, token_dim):
    q = queries[0]
    tokens = np.ones((3, token_dim), np.float32)
    options = pb.SearchOptions(final_num_neighbors=5, leaves_to_search=3, pre_reorder_num_neighbors=50,
                               allowlist=pb.IdList(ids=[1, 2, 3]), denylist=pb.IdList(ids=[4]))
    return {
        "ListIndexes": pb.ListIndexesRequest(),
        "DescribeIndex": pb.DescribeIndexRequest(index="vec"),
        "Search": pb.SearchRequest(index="vec", query=to_matrix(q), options=options),
        "SearchBatch": pb.SearchBatchRequest(index="exact", queries=to_matrix(queries[:4])),
        "Rerank": pb.RerankRequest(index="mv", query_tokens=to_matrix(tokens), candidate_ids=[1, 2, 3], k=2),
        "SearchAndRerank": pb.SearchAndRerankRequest(index="mv", query_tokens=to_matrix(tokens),
                                                     options=pb.SearchOptions(num_candidates=20)),
    }


def hostile_requests(queries):
    q = queries[0]
    odd_shapes = [[], [0], [-1], [2**31, 2**31], [2**32, 2**32], [1, 1, 1, 16], [16, 2**62], [2**63 - 1]]
    out = []
    for shape in odd_shapes:
        for data in (b"", b"\0" * 64, np.full(16, np.nan, np.float32).tobytes()):
            out.append(("Search", pb.SearchRequest(index="vec", query=pb.Matrix(shape=shape, data=data))))
            out.append(("SearchBatch", pb.SearchBatchRequest(index="vec", queries=pb.Matrix(shape=shape, data=data))))
    for value in (-2**31, -1, 0, 1, 2**31 - 1):
        for field in ("final_num_neighbors", "leaves_to_search", "pre_reorder_num_neighbors", "num_candidates"):
            options = pb.SearchOptions(**{field: value})
            for index in ("vec", "exact", "mv"):
                out.append(("Search", pb.SearchRequest(index=index, query=to_matrix(q), options=options)))
    for ids in ([-1], [2**63 - 1], [-2**63], list(range(0, 200_000, 7))):
        out.append(("Search", pb.SearchRequest(index="vec", query=to_matrix(q),
                                              options=pb.SearchOptions(allowlist=pb.IdList(ids=ids)))))
        out.append(("Rerank", pb.RerankRequest(index="mv", query_tokens=to_matrix(np.ones((2, 16), np.float32)),
                                              candidate_ids=ids[:5000], k=1)))
    for name in ("", "\x00", "../vec", "v" * 10_000, "ünïcode"):
        out.append(("DescribeIndex", pb.DescribeIndexRequest(index=name)))
    return out


def call(channel, method, payload: bytes):
    rpc = channel.unary_unary(f"/annlib.v1.SearchService/{method}")  # bytes in and out
    try:
        rpc(payload, timeout=30)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 and b:
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b = b[:rng.randrange(len(b) + 1)]
    elif kind == 2:
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    else:
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(b)


def test_malformed_requests_get_documented_status_codes(fuzz_server):
    proc, queries, token_dim = fuzz_server
    rng = random.Random(7)
    valid = valid_requests(queries, token_dim)
    seen = {}
    with proc.channel(options=[("grpc.max_send_message_length", 16 << 20)]) as channel:
        cases = [(m, r.SerializeToString()) for m, r in hostile_requests(queries)]
        for _ in range(60):
            cases.append((rng.choice(list(valid)), bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))))
        for method, request in valid.items():
            data = request.SerializeToString()
            cases += [(method, mutate(rng, data)) for _ in range(60)]
        for method, payload in cases:
            code = call(channel, method, payload)
            assert code in EXPECTED, (method, payload[:80], code, proc.stderr()[-2000:])
            seen[code] = seen.get(code, 0) + 1
        # Still serving, and still right.
        ids = list(grpc_search(channel, queries[1]))
        assert ids == annlib.load(proc_index_path(proc)).search(queries[1])[0].tolist()
    assert seen.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0 and seen.get(grpc.StatusCode.OK, 0) > 0, seen
    # grpc logs its own failures to parse a request with a traceback; an exception of the
    # service's own would be logged as "Exception calling application".
    assert "Exception calling application" not in proc.stderr()


def grpc_search(channel, q):
    from annlib.v1 import service_pb2_grpc as rpc

    return rpc.SearchServiceStub(channel).Search(pb.SearchRequest(index="vec", query=to_matrix(q)),
                                                 timeout=30).neighbors.ids


def proc_index_path(proc):
    args = proc.proc.args
    return next(a.split("=", 1)[1] for a in args if str(a).startswith("vec="))
