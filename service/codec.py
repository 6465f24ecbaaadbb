"""Conversions between annlib.v1 messages and numpy, with the request checks
that map to INVALID_ARGUMENT. Matrices are a shape plus either little-endian
float32 bytes (data) or a list of numbers (values, for JSON clients)."""
from __future__ import annotations

import math

import grpc
import numpy as np

from annlib.v1 import messages_pb2 as pb

_FLOAT32_LE = np.dtype("<f4")


class ServiceError(Exception):
    """An error with the status code the caller gets."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def to_matrix(array) -> pb.Matrix:
    a = np.ascontiguousarray(array, dtype=_FLOAT32_LE)
    return pb.Matrix(shape=list(a.shape), data=a.tobytes())


def from_matrix(message: pb.Matrix, name: str, *, ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """The array a Matrix carries: shape checked against the byte or value count and
    against the allowed ranks; values are checked by the library."""
    # Every field is read once: each read of a bytes field copies it (this runs on every RPC).
    shape, data, num_values = tuple(message.shape), message.data, len(message.values)
    if len(shape) not in ndim:
        ranks = " or ".join(f"{n}-D" for n in ndim)
        raise invalid(f"{name} must be {ranks}, got shape {list(shape)}")
    if min(shape) <= 0:
        raise invalid(f"{name} has an empty or negative dimension: shape {list(shape)}")
    count = math.prod(shape)  # exact: a numpy product would wrap around for huge shapes
    if num_values:
        if data:
            raise invalid(f"{name} sets both data and values; send one (values for JSON clients)")
        if num_values != count:
            raise invalid(f"{name} has {num_values} values; shape {list(shape)} needs {count}")
        return np.asarray(message.values, dtype=np.float32).reshape(shape)
    if len(data) != count * 4:
        raise invalid(f"{name} has {len(data)} bytes of data; shape {list(shape)} needs {count * 4} "
                      "(little-endian float32; or send the numbers in values)")
    # A native-order float32 copy (frombuffer views the message's bytes read-only).
    return np.frombuffer(data, dtype=_FLOAT32_LE).astype(np.float32).reshape(shape)


def ids_of(values, name: str = "ids") -> np.ndarray:
    """A repeated int64 field as an array of distinct ids >= 0."""
    ids = np.asarray(values, dtype=np.int64)
    if ids.size == 0:
        raise invalid(f"{name} is empty")
    if ids.min() < 0:
        raise invalid(f"{name} must be >= 0, got {int(ids.min())}")
    if len(np.unique(ids)) != len(ids):
        raise invalid(f"{name} holds an id more than once; send each id once per call")
    return ids


def to_neighbors(ids: np.ndarray, scores: np.ndarray) -> pb.Neighbors:
    return pb.Neighbors(ids=ids.tolist(), scores=scores.tolist())


def option(options: pb.SearchOptions, field: str):
    """An optional field's value, or None when unset."""
    return getattr(options, field) if options.HasField(field) else None
