"""Late-interaction re-ranking on a multi-vector dataset (wordnet-multivector-4k
layout: pooled vectors, per-token vectors, qrels, exact MaxSim top-100).

    python bench/bench_multivector.py ../shared/datasets/wordnet-multivector-4k.hdf5 \
        [--candidates 10,20,50,100,200] [--token-dtype float16]

Prints recall@10 and nDCG@10 against the qrels for pooled-vector search alone
and for MaxSim re-ranking of candidates from the pooled vectors only and from
tokens + pooled vectors (the default); the fraction of the exact MaxSim top-10
recovered per candidate count; and MaxSim throughput (candidate
documents scored per second, one query at a time) of annlib's kernel at each
SIMD level next to NumPy (one GEMM over the candidates' concatenated tokens,
then a segmented max), measured in this run on the same candidates.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def read(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f if f[name].dtype != object}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rows(matrix, offsets, i):
    return matrix[offsets[i]:offsets[i + 1]]


def ndcg_at(ids, relevant, k):
    gains = [1.0 / np.log2(r + 2) for r, doc in enumerate(ids[:k]) if doc in relevant]
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(relevant))))
    return sum(gains) / ideal


def relevance_metrics(results, qrels, k):
    recalls = [len(set(ids[:k].tolist()) & rel) / len(rel) for ids, rel in zip(results, qrels)]
    ndcgs = [ndcg_at(ids.tolist(), rel, k) for ids, rel in zip(results, qrels)]
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def numpy_maxsim(q, tokens32, offsets, ids):
    """Strong NumPy baseline: one GEMM over all candidate tokens, segmented max."""
    starts, stops = offsets[ids], offsets[ids + 1]
    take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
    sims = q @ tokens32[take].T
    bounds = np.concatenate([[0], np.cumsum(stops - starts)[:-1]])
    return np.maximum.reduceat(sims, bounds, axis=1).sum(axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--candidates", default="10,20,50,100,200")
    parser.add_argument("--token-dtype", default="float16", choices=["float16", "int8"])
    parser.add_argument("--throughput-queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    import annlib

    data = read(args.dataset)
    k = args.k
    q_off, d_off = data["query_offsets"], data["doc_offsets"]
    nq = len(q_off) - 1
    queries = [rows(data["query_tokens"], q_off, i).astype(np.float32) for i in range(nq)]
    qrels = [set(rows(data["qrels_doc_ids"], data["qrels_offsets"], i).tolist()) for i in range(nq)]
    exact_top = data["maxsim_neighbors"][:, :k]

    indexes = {}
    for name, with_tokens in (("pooled", False), ("tokens+pooled", True)):
        start = time.perf_counter()
        indexes[name] = annlib.MultiVectorIndex.build(data["doc_pooled"], data["doc_tokens"], d_off, num_neighbors=k,
                                                      token_dtype=args.token_dtype, token_index=with_tokens,
                                                      progress=False)
        print(f"{name}: built in {time.perf_counter() - start:.2f} s")
    index = indexes["tokens+pooled"]
    print(f"{index.size()} documents, {index.num_tokens} tokens, {args.token_dtype}: "
          f"{index.bytes_per_token} bytes/token; document index: {index.documents.config.kind}, "
          f"token index: {index.token_index.config.kind}")
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "mv")
        parts = {"token store": sum(f.stat().st_size for f in (Path(tmp) / "mv").glob("*.npy")),
                 "document index": dir_bytes(Path(tmp) / "mv" / "documents"),
                 "token index": dir_bytes(Path(tmp) / "mv" / "tokens")}
    print("saved size: " + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in parts.items()))

    pooled, _ = index.documents.search_batched(data["query_pooled"], final_num_neighbors=k)
    r, n = relevance_metrics(pooled, qrels, k)
    print(f"\n{'candidates -> re-rank, count':<32}{'recall@10':>10}{'nDCG@10':>10}{'exact MaxSim top-10 found':>28}")
    found = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(pooled, exact_top)])
    print(f"{'pooled vectors alone':<32}{r:>10.3f}{n:>10.3f}{found:>28.3f}")
    for name, idx in indexes.items():
        for c in [int(x) for x in args.candidates.split(",")]:
            start = time.perf_counter()
            reranked = np.array([idx.search(data["query_pooled"][i], queries[i], k, num_candidates=c)[0]
                                 for i in range(nq)])
            per_query = (time.perf_counter() - start) / nq * 1e6
            r, n = relevance_metrics(reranked, qrels, k)
            found = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(reranked, exact_top)])
            print(f"{f'{name} -> MaxSim, {c}':<32}{r:>10.3f}{n:>10.3f}{found:>28.3f}   {per_query:6.0f} us/query")
    r, n = relevance_metrics(exact_top, qrels, k)
    print(f"{'exact MaxSim (all documents)':<32}{r:>10.3f}{n:>10.3f}{1.0:>28.3f}")

    # Throughput: the 100 pooled candidates of each query, one query per call.
    cands, _ = index.documents.search_batched(data["query_pooled"][:args.throughput_queries], final_num_neighbors=100)
    tokens16 = np.asarray(data["doc_tokens"])
    tokens32 = tokens16.astype(np.float32)
    total = cands.size

    def timed(fn):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for i, ids in enumerate(cands):
                fn(queries[i], ids)
            best = min(best, time.perf_counter() - t)
        return total / best

    numpy32 = timed(lambda q, ids: numpy_maxsim(q, tokens32, d_off, ids))
    numpy16 = timed(lambda q, ids: numpy_maxsim(q, tokens16, d_off, ids))
    print(f"\nMaxSim throughput, candidate documents per second (100 per query, 1 thread, "
          f"{np.diff(d_off).mean():.1f} tokens/doc, {np.mean([len(q) for q in queries]):.1f} tokens/query)")
    print(f"{'NumPy, float32 copy of the tokens':<40}{numpy32:>12,.0f}")
    print(f"{'NumPy, float16 store':<40}{numpy16:>12,.0f}")
    for level in annlib.available_simd_levels():
        scorer = annlib._core.MaxSimScorer(index._tokens, index._token_scale, index._offsets, level)
        rate = timed(lambda q, ids: scorer.scores(q, ids, 1))
        print(f"{f'annlib {args.token_dtype}, {level}':<40}{rate:>12,.0f}   {rate / numpy32:5.1f}x NumPy float32")


if __name__ == "__main__":
    main()
