from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Matrix(_message.Message):
    __slots__ = ("shape", "data", "values")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("final_num_neighbors", "leaves_to_search", "pre_reorder_num_neighbors", "num_candidates", "allowlist", "denylist")
    FINAL_NUM_NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    PRE_REORDER_NUM_NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    NUM_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ALLOWLIST_FIELD_NUMBER: _ClassVar[int]
    DENYLIST_FIELD_NUMBER: _ClassVar[int]
    final_num_neighbors: int
    leaves_to_search: int
    pre_reorder_num_neighbors: int
    num_candidates: int
    allowlist: IdList
    denylist: IdList
    def __init__(self, final_num_neighbors: _Optional[int] = ..., leaves_to_search: _Optional[int] = ..., pre_reorder_num_neighbors: _Optional[int] = ..., num_candidates: _Optional[int] = ..., allowlist: _Optional[_Union[IdList, _Mapping]] = ..., denylist: _Optional[_Union[IdList, _Mapping]] = ...) -> None: ...

class IdList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Neighbors(_message.Message):
    __slots__ = ("ids", "scores")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, ids: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("name", "kind", "distance_measure", "size", "dim", "num_neighbors", "path", "token_dim", "token_dtype", "bytes_per_token", "num_tokens", "config_json", "leaves_to_search", "pre_reorder_num_neighbors", "num_leaves", "simd_level", "format_version", "library_version", "writable", "last_snapshot_unix_s", "wal_records", "wal_bytes", "last_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_MEASURE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DIM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DTYPE_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    PRE_REORDER_NUM_NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    NUM_LEAVES_FIELD_NUMBER: _ClassVar[int]
    SIMD_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    LAST_SNAPSHOT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    WAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    distance_measure: str
    size: int
    dim: int
    num_neighbors: int
    path: str
    token_dim: int
    token_dtype: str
    bytes_per_token: int
    num_tokens: int
    config_json: str
    leaves_to_search: int
    pre_reorder_num_neighbors: int
    num_leaves: int
    simd_level: str
    format_version: int
    library_version: str
    writable: bool
    last_snapshot_unix_s: float
    wal_records: int
    wal_bytes: int
    last_sequence: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., distance_measure: _Optional[str] = ..., size: _Optional[int] = ..., dim: _Optional[int] = ..., num_neighbors: _Optional[int] = ..., path: _Optional[str] = ..., token_dim: _Optional[int] = ..., token_dtype: _Optional[str] = ..., bytes_per_token: _Optional[int] = ..., num_tokens: _Optional[int] = ..., config_json: _Optional[str] = ..., leaves_to_search: _Optional[int] = ..., pre_reorder_num_neighbors: _Optional[int] = ..., num_leaves: _Optional[int] = ..., simd_level: _Optional[str] = ..., format_version: _Optional[int] = ..., library_version: _Optional[str] = ..., writable: _Optional[bool] = ..., last_snapshot_unix_s: _Optional[float] = ..., wal_records: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ListIndexesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIndexesResponse(_message.Message):
    __slots__ = ("indexes",)
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    indexes: _containers.RepeatedCompositeFieldContainer[IndexInfo]
    def __init__(self, indexes: _Optional[_Iterable[_Union[IndexInfo, _Mapping]]] = ...) -> None: ...

class DescribeIndexRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: str
    def __init__(self, index: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("index", "query", "options")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    index: str
    query: Matrix
    options: SearchOptions
    def __init__(self, index: _Optional[str] = ..., query: _Optional[_Union[Matrix, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("neighbors",)
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    neighbors: Neighbors
    def __init__(self, neighbors: _Optional[_Union[Neighbors, _Mapping]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("index", "queries", "options")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    index: str
    queries: Matrix
    options: SearchOptions
    def __init__(self, index: _Optional[str] = ..., queries: _Optional[_Union[Matrix, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Neighbors]
    def __init__(self, results: _Optional[_Iterable[_Union[Neighbors, _Mapping]]] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("index", "query_tokens", "candidate_ids", "k")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    index: str
    query_tokens: Matrix
    candidate_ids: _containers.RepeatedScalarFieldContainer[int]
    k: int
    def __init__(self, index: _Optional[str] = ..., query_tokens: _Optional[_Union[Matrix, _Mapping]] = ..., candidate_ids: _Optional[_Iterable[int]] = ..., k: _Optional[int] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("neighbors",)
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    neighbors: Neighbors
    def __init__(self, neighbors: _Optional[_Union[Neighbors, _Mapping]] = ...) -> None: ...

class SearchAndRerankRequest(_message.Message):
    __slots__ = ("index", "query", "query_tokens", "options")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    QUERY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    index: str
    query: Matrix
    query_tokens: Matrix
    options: SearchOptions
    def __init__(self, index: _Optional[str] = ..., query: _Optional[_Union[Matrix, _Mapping]] = ..., query_tokens: _Optional[_Union[Matrix, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchAndRerankResponse(_message.Message):
    __slots__ = ("neighbors",)
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    neighbors: Neighbors
    def __init__(self, neighbors: _Optional[_Union[Neighbors, _Mapping]] = ...) -> None: ...

class LoadIndexRequest(_message.Message):
    __slots__ = ("name", "path", "replace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    replace: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class LoadIndexResponse(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: IndexInfo
    def __init__(self, index: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...

class UnloadIndexRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadIndexResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("index", "ids", "vectors")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    index: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    vectors: Matrix
    def __init__(self, index: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., vectors: _Optional[_Union[Matrix, _Mapping]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("index", "ids")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    index: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, index: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("sequence", "deleted")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    deleted: int
    def __init__(self, sequence: _Optional[int] = ..., deleted: _Optional[int] = ...) -> None: ...
