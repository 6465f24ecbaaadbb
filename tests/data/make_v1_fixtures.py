"""Writes tests/data/v1/: small indexes saved in format version 1 (annlib 0.1.0 at commit
828c64d, before format 2) and what they answered then, for test_format_migration.py.
Kept for the record; run with that commit checked out: python tests/data/make_v1_fixtures.py"""
import shutil
from pathlib import Path

import numpy as np

import annlib

OUT = Path(__file__).resolve().parent / "v1"


def clustered(rng, n, d, clusters=8):
    centers = rng.standard_normal((clusters, d)).astype(np.float32)
    return (centers[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    rng = np.random.default_rng(2026)
    x = clustered(rng, 700, 16)
    q = clustered(rng, 25, 16)
    np.save(OUT / "queries.npy", q)
    ids = np.arange(1000, 1700, dtype=np.int64)
    indexes = {
        "l2_soar_updated": annlib.builder(x[:600], 10, "squared_l2", ids=ids[:600])
        .tree(12, 3, soar_lambda=1.5).score_ah(2).reorder(40).build(progress=False),
        "cosine_int8": annlib.builder(x, 5, "cosine").tree(10, 2).score_ah(4, anisotropic_quantization_threshold=0.2)
        .reorder(30, dtype="int8").build(progress=False),
        "dot_bf16_no_tree": annlib.builder(x, 5, "dot_product").score_ah(2).reorder(20, dtype="bfloat16")
        .build(progress=False),
        "brute_l2_float32": annlib.builder(x, 10, "squared_l2").score_brute_force().build(),
        "brute_dot_int8_binned": annlib.builder(x, 10, "dot_product").score_brute_force(0.9, dtype="int8").build(),
    }
    updated = indexes["l2_soar_updated"]
    updated.upsert(ids[600:], x[600:])
    updated.delete(ids[:50])
    for name, index in indexes.items():
        index.save(OUT / name)
        answers = {"default": index.search_batched(q)}
        if index.config.kind == "quantized" and index.config.tree is not None:
            answers["knobs"] = index.search_batched(q, 4, 60, 5)
        answers["filtered"] = index.search_batched(q, allowlist=np.arange(0, 2000, 3))
        for key, (i, s) in answers.items():
            np.save(OUT / f"{name}.{key}.ids.npy", i)
            np.save(OUT / f"{name}.{key}.scores.npy", s)
    print(sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
