"""Multi-vector (late-interaction) retrieval: candidates come from an annlib
index over one pooled vector per document and, optionally, from an index over
every token vector (ColBERT's token-level retrieval); exact MaxSim over each
candidate's token vectors re-ranks them (docs/algorithms.md, section 7):

    MaxSim(q, d) = sum_i max_j <q_i, d_j>

    index = annlib.MultiVectorIndex.build(doc_vectors, doc_tokens, doc_offsets)
    ids, scores = index.search(query_vector, query_tokens, k=10, num_candidates=100)

Why token-level candidates: a pooled vector blurs a document's tokens, so the
pooled top-100 holds only about 92% of the exact MaxSim top-10 on the
wordnet-multivector dev set; the documents owning the best 32 tokens of each
query token, ranked by the MaxSim those tokens bound, hold about 97%
(bench/bench_multivector.py). The token index costs one more index over all
token rows; build with token_index=False to keep only the pooled one.

Token vectors are stored as float16 (2 bytes per value) or int8 with one
float32 scale per token (1 byte per value + 4 per token); a saved index keeps
them in one .npy file that load() memory-maps.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from . import _core
from ._validate import as_float_matrix, check_database, check_k, check_num_threads
from .builder import builder as make_builder
from .defaults import configure as default_build
from .indexes import DAMAGE, load_single
from .io import load_index, restore_files, save_index, saved_files
from .searcher import Searcher
from .version import __version__

TOKEN_DTYPES = ("float16", "int8")
_FLOAT16_MAX = 65504.0
_ENCODE_CHUNK = 1 << 16  # token rows widened to float32 at a time while building

_DEFAULT_TOKEN_NEIGHBORS = 32


def _check_offsets(doc_offsets, num_docs: int, num_tokens: int) -> np.ndarray:
    offsets = np.asarray(doc_offsets)
    if offsets.ndim != 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise TypeError(f"doc_offsets must be a 1-D integer array, got dtype {offsets.dtype} shape {offsets.shape}")
    if offsets.shape[0] != num_docs + 1:
        raise ValueError(f"doc_offsets must have num_docs + 1 = {num_docs + 1} entries, got {offsets.shape[0]}")
    offsets = offsets.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != num_tokens:
        raise ValueError(f"doc_offsets must start at 0 and end at the number of token rows ({num_tokens}); "
                         f"got {offsets[0]} .. {offsets[-1]}")
    empty = np.flatnonzero(np.diff(offsets) <= 0)
    if empty.size:
        raise ValueError(f"document {int(empty[0])} has no token vectors (doc_offsets must increase strictly)")
    return offsets


def _encode_tokens(tokens, token_dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """float16 rows, or int8 rows with per-row scale max|x|/127; checked in chunks."""
    if token_dtype not in TOKEN_DTYPES:
        raise ValueError(f"token_dtype must be one of {', '.join(TOKEN_DTYPES)}; got {token_dtype!r}")
    if not hasattr(tokens, "shape") or len(tokens.shape) != 2:
        tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"doc_token_vectors must be a non-empty 2-D (num_tokens, dim) matrix, got shape {tokens.shape}")
    n, dim = tokens.shape
    out = np.empty((n, dim), dtype=np.float16 if token_dtype == "float16" else np.int8)
    scale = np.empty(n, dtype=np.float32) if token_dtype == "int8" else None
    for start in range(0, n, _ENCODE_CHUNK):
        chunk = as_float_matrix(tokens[start:start + _ENCODE_CHUNK], "doc_token_vectors")
        stop = start + chunk.shape[0]
        if token_dtype == "float16":
            if np.abs(chunk).max() > _FLOAT16_MAX:
                raise ValueError("doc_token_vectors has values beyond float16's range (65504); "
                                 "rescale them or use token_dtype='int8'")
            out[start:stop] = chunk
        else:
            s = np.abs(chunk).max(axis=1) / 127.0
            s[s == 0] = 1.0
            out[start:stop] = np.clip(np.rint(chunk / s[:, None]), -127, 127)
            scale[start:stop] = s
    return out, scale


def _default_index(builder, measure: str, reorder_dtype: str = "float32"):
    """annlib's default build (annlib.defaults) for an index nothing tunes: exact brute force
    on small data, else a quantized tree (SOAR where the data says it pays), 10% of its
    leaves searched, 200 candidates reordered from a reorder_dtype copy."""
    return default_build(builder, measure, tuned=False, pre_reorder_num_neighbors=200, reorder_dtype=reorder_dtype)


def _token_candidates(token_ids: np.ndarray, token_scores: np.ndarray, offsets: np.ndarray):
    """Documents owning the retrieved tokens, with the MaxSim those tokens
    bound: per query token, a document's best retrieved token score, or the
    query token's weakest retrieved score when none of its tokens came back
    (with exact token search, no unretrieved token beats it). Returns
    (doc ids, bound), unsorted."""
    valid = token_ids >= 0
    rows = np.nonzero(valid)[0]
    docs = np.searchsorted(offsets, token_ids[valid], side="right") - 1
    found = np.unique(docs)
    weakest = np.array([s[v].min() if v.any() else 0.0 for s, v in zip(token_scores, valid)], dtype=np.float32)
    best = np.tile(weakest[:, None], (1, found.size))
    np.maximum.at(best, (rows, np.searchsorted(found, docs)), token_scores[valid])
    return found, best.sum(axis=0)


class MultiVectorIndex:
    """Pooled-vector candidates re-ranked by exact MaxSim over token vectors."""

    def __init__(self, documents: Searcher, tokens: np.ndarray, token_scale: np.ndarray | None,
                 doc_offsets: np.ndarray, token_index: Searcher | None = None, *, simd_level: str = ""):
        if documents.size() != doc_offsets.shape[0] - 1:
            raise ValueError(f"the document index holds {documents.size()} vectors but the token store "
                             f"{doc_offsets.shape[0] - 1} documents")
        if token_index is not None and token_index.size() != tokens.shape[0]:
            raise ValueError(f"the token index holds {token_index.size()} vectors but the token store "
                             f"{tokens.shape[0]} tokens")
        self.documents = documents
        self.token_index = token_index
        self._tokens = tokens
        self._token_scale = token_scale
        self._offsets = doc_offsets
        self._scorer = _core.MaxSimScorer(tokens, token_scale, doc_offsets, simd_level)

    @classmethod
    def build(cls, doc_vectors, doc_token_vectors, doc_offsets, *, distance_measure: str = "dot_product",
              num_neighbors: int = 10, token_dtype: str = "float16", token_index: bool = True,
              token_neighbors: int = _DEFAULT_TOKEN_NEIGHBORS, configure: Callable | None = None,
              configure_tokens: Callable | None = None, num_threads: int = 0,
              progress: bool | None = None) -> "MultiVectorIndex":
        """Indexes documents: doc_vectors (n, d) one pooled vector each;
        doc_token_vectors (T, d_tok) every document's token rows, document i
        owning rows doc_offsets[i]:doc_offsets[i+1] (n + 1 offsets).

        token_index: also index every token row (dot product) for token-level
            candidates; token_neighbors tokens are retrieved per query token.
        configure(builder) -> builder sets the document index's stages and
        configure_tokens the token index's; the default for both is annlib's
        default build (annlib.defaults: exact brute force on small data, else a
        quantized tree, SOAR where it pays; see _default_index).
        """
        doc_vectors = check_database(doc_vectors)
        num_threads = check_num_threads(num_threads)
        tokens, scale = _encode_tokens(doc_token_vectors, token_dtype)
        offsets = _check_offsets(doc_offsets, doc_vectors.shape[0], tokens.shape[0])
        b = make_builder(doc_vectors, num_neighbors, distance_measure)
        b = (configure or (lambda x: _default_index(x, distance_measure)))(b)
        documents = b.build(num_threads=num_threads, progress=progress)
        tokens_searcher = None
        if token_index:
            # Indexed as stored, so token scores agree with the MaxSim re-ranking.
            stored = tokens.astype(np.float32) if scale is None else tokens.astype(np.float32) * scale[:, None]
            tb = make_builder(stored, check_k(token_neighbors, len(stored), "token_neighbors"), "dot_product")
            # int8 reordering: candidate generation needs token ranks, not exact scores, and a
            # float32 copy would take twice the float16 store's memory.
            tb = (configure_tokens or (lambda x: _default_index(x, "dot_product", reorder_dtype="int8")))(tb)
            tokens_searcher = tb.build(num_threads=num_threads, progress=progress)
        return cls(documents, tokens, scale, offsets, tokens_searcher)

    # -- sizes ---------------------------------------------------------------
    def size(self) -> int:
        return self.documents.size()

    def __len__(self) -> int:
        return self.size()

    def __contains__(self, doc_id) -> bool:
        return bool(self.documents.contains(doc_id))

    def __repr__(self) -> str:
        tokens = "token index" if self.token_index is not None else "no token index"
        return (f"MultiVectorIndex({self.size():,} documents, {self.num_tokens:,} {self.token_dtype} tokens of "
                f"dim {self.token_dim}, {tokens}, simd {self.simd_level}; documents: {self.documents!r})")

    # Pickles carry the saved format, checked on arrival like a load (annlib.io.saved_files).
    def __reduce__(self):
        return (type(self)._unpickle, (saved_files(self.save),))

    @classmethod
    def _unpickle(cls, files):
        return restore_files(files, lambda path: cls.load(path, mmap=False))

    @property
    def dim(self) -> int:
        """Dimension of the pooled document vectors (and query vectors)."""
        return self.documents.dim

    @property
    def token_dim(self) -> int:
        return int(self._tokens.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self._tokens.shape[0])

    @property
    def token_dtype(self) -> str:
        return "int8" if self._token_scale is not None else "float16"

    @property
    def bytes_per_token(self) -> int:
        """Storage of one token vector: values plus the int8 scale."""
        return self.token_dim * self._tokens.dtype.itemsize + (4 if self._token_scale is not None else 0)

    @property
    def simd_level(self) -> str:
        return self._scorer.simd_level

    # -- scoring -------------------------------------------------------------
    def _query_tokens(self, query_tokens) -> np.ndarray:
        q = as_float_matrix(query_tokens, "query_tokens", dim=self.token_dim, allow_1d=True)
        if q.shape[0] == 0:
            raise ValueError("query_tokens has no rows")
        return q

    def _doc_ids(self, ids, name: str) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"{name} must be a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= self.size()))
        if bad.size:
            raise ValueError(f"{name} holds {int(arr[bad[0]])}, outside [0, {self.size()})")
        return arr

    def maxsim(self, query_tokens, doc_ids, *, num_threads: int = 1) -> np.ndarray:
        """Exact MaxSim of the query's tokens against each listed document (float32)."""
        q = self._query_tokens(query_tokens)
        ids = self._doc_ids(doc_ids, "doc_ids")
        return self._scorer.scores(q, ids, check_num_threads(num_threads))

    def rerank(self, query_tokens, candidate_ids, k: int | None = None, *, num_threads: int = 1):
        """The k best of candidate_ids by exact MaxSim: (ids int64[k], scores float32[k]),
        best first, ties to the smaller id. k defaults to the index's num_neighbors."""
        q = self._query_tokens(query_tokens)
        ids = self._doc_ids(candidate_ids, "candidate_ids")
        if np.unique(ids).size != ids.size:
            raise ValueError("candidate_ids holds duplicates; pass each document once")
        k = check_k(self.documents.config.num_neighbors if k is None else k, 2**31 - 1, "k")
        if k > ids.size:
            raise ValueError(f"k={k} exceeds the {ids.size} candidates given")
        return self._rerank(q, ids, k, check_num_threads(num_threads))

    def _rerank(self, q: np.ndarray, ids: np.ndarray, k: int, num_threads: int):
        """rerank() on checked input: distinct in-range ids, k <= len(ids)."""
        scores = self._scorer.scores(q, ids, num_threads)
        order = np.lexsort((ids, -scores))[:k]
        return ids[order], scores[order]

    def candidates(self, query_vector, query_tokens, num_candidates: int = 100, *, token_neighbors=None,
                   leaves_to_search=None, pre_reorder_num_neighbors=None) -> np.ndarray:
        """Up to num_candidates distinct document ids for MaxSim re-ranking:
        those owning the best tokens first (by the MaxSim their tokens bound),
        then the pooled-vector neighbors in their order. query_vector may be
        None when the index has a token index; the knobs apply to the pooled
        search."""
        num_candidates = check_k(num_candidates, 2**31 - 1, "num_candidates")
        q = self._query_tokens(query_tokens) if self.token_index is not None else None
        return self._candidates(query_vector, q, num_candidates, token_neighbors, leaves_to_search,
                                pre_reorder_num_neighbors)

    def _candidates(self, query_vector, q, num_candidates: int, token_neighbors, leaves_to_search,
                    pre_reorder_num_neighbors) -> np.ndarray:
        """candidates() with q, the query tokens, already checked."""
        if query_vector is None and self.token_index is None:
            raise ValueError("this index has no token index: pass query_vector for pooled-vector candidates")
        pooled = np.empty(0, np.int64)
        if query_vector is not None:
            pooled, _ = self.documents.search(query_vector, min(num_candidates, self.size()),
                                              pre_reorder_num_neighbors, leaves_to_search, num_threads=1)
            pooled = pooled[pooled >= 0]
        if self.token_index is None:
            return pooled
        if token_neighbors is not None:
            token_neighbors = check_k(token_neighbors, self.num_tokens, "token_neighbors")
        token_ids, token_scores = self.token_index.search_batched(q, token_neighbors, num_threads=1)
        found, bound = _token_candidates(token_ids, token_scores, self._offsets)
        by_tokens = found[np.lexsort((found, -bound))]
        rest = pooled[~np.isin(pooled, by_tokens)]
        return np.concatenate([by_tokens, rest])[:num_candidates]

    def search(self, query_vector, query_tokens, k: int | None = None, num_candidates: int = 100, *,
               token_neighbors=None, leaves_to_search=None, pre_reorder_num_neighbors=None, num_threads: int = 1):
        """The best k of num_candidates candidates (see candidates()) by exact
        MaxSim: (ids int64[k], scores float32[k]), padded with -1 / -inf when
        fewer candidates than k were found."""
        k = self.documents.config.num_neighbors if k is None else k
        k = check_k(k, self.size(), "k")
        num_candidates = check_k(num_candidates, 2**31 - 1, "num_candidates")
        if num_candidates < k:
            raise ValueError(f"num_candidates ({num_candidates}) must be >= k ({k})")
        num_threads = check_num_threads(num_threads)
        # Checked once here; the candidate and re-rank steps take them as they are.
        q = self._query_tokens(query_tokens)
        candidates = self._candidates(query_vector, q, num_candidates, token_neighbors, leaves_to_search,
                                      pre_reorder_num_neighbors)
        ids, scores = np.empty(0, np.int64), np.empty(0, np.float32)
        if candidates.size:
            ids, scores = self._rerank(q, candidates, min(k, candidates.size), num_threads)
        if ids.size < k:
            ids = np.concatenate([ids, np.full(k - ids.size, -1, np.int64)])
            scores = np.concatenate([scores, np.full(k - scores.size, -np.inf, np.float32)])
        return ids, scores

    # -- persistence ---------------------------------------------------------
    @property
    def config_json(self) -> str:
        """The multi-vector index's own settings, as saved in its config.json."""
        return self._config_json()

    def _config_json(self) -> str:
        return json.dumps({"kind": "multivector", "token_dtype": self.token_dtype, "token_dim": self.token_dim,
                           "num_docs": self.size(), "num_tokens": self.num_tokens,
                           "token_index": self.token_index is not None}, indent=2, sort_keys=True)

    def save(self, path) -> None:
        """Writes the token store and the document index (subdirectory
        documents/) to directory `path` atomically."""
        arrays = {"tokens": self._tokens, "doc_offsets": self._offsets}
        if self._token_scale is not None:
            arrays["token_scale"] = self._token_scale
        subindexes = {"documents": self.documents}
        if self.token_index is not None:
            subindexes["tokens"] = self.token_index
        save_index(path, self._config_json(), arrays, __version__, subindexes=subindexes)

    @classmethod
    def load(cls, path, mmap: bool = True, verify: bool = True) -> "MultiVectorIndex":
        """Loads a saved multi-vector index; the token store is memory-mapped
        when mmap is true."""
        return cls.from_saved(path, *load_index(path, mmap=mmap, verify=verify), mmap=mmap, verify=verify)

    @classmethod
    def from_saved(cls, path, config_json: str, arrays: dict, manifest: dict, *, mmap: bool,
                   verify: bool) -> "MultiVectorIndex":
        """The index from what annlib.io.load_index read at path."""
        try:
            config = json.loads(config_json)
        except ValueError as exc:
            raise ValueError(f"{path}/config.json is invalid: {exc}") from exc
        if (not isinstance(config, dict) or config.get("kind") != "multivector"
                or "documents" not in manifest.get("subindexes", [])):
            raise ValueError(f"{path} is not a saved multi-vector index")
        documents = load_single(Path(path) / "documents", mmap=mmap, verify=verify)
        token_index = None
        if config.get("token_index"):
            if "tokens" not in manifest.get("subindexes", []):
                raise ValueError(f"{path}: the token index (tokens/) is missing")
            token_index = load_single(Path(path) / "tokens", mmap=mmap, verify=verify)
        try:
            return cls(documents, arrays["tokens"], arrays.get("token_scale"), arrays["doc_offsets"], token_index)
        except DAMAGE as exc:
            raise ValueError(f"{path}: saved arrays do not form a multi-vector index ({exc})") from exc
