"""Conversions between annlib.v1 messages and numpy, with the request checks
that map to INVALID_ARGUMENT. Matrices are little-endian float32 + shape."""
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
    """The array a Matrix carries: shape checked against the byte count and
    against the allowed ranks; values are checked by the library."""
    shape = tuple(message.shape)
    if len(shape) not in ndim:
        ranks = " or ".join(f"{n}-D" for n in ndim)
        raise invalid(f"{name} must be {ranks}, got shape {list(shape)}")
    if any(s <= 0 for s in shape):
        raise invalid(f"{name} has an empty or negative dimension: shape {list(shape)}")
    expected = math.prod(shape) * 4  # exact: a numpy product would wrap around for huge shapes
    if len(message.data) != expected:
        raise invalid(f"{name} has {len(message.data)} bytes of data; shape {list(shape)} needs {expected} "
                      "(little-endian float32)")
    return np.frombuffer(message.data, dtype=_FLOAT32_LE).reshape(shape).astype(np.float32)


def to_neighbors(ids: np.ndarray, scores: np.ndarray) -> pb.Neighbors:
    return pb.Neighbors(ids=ids.tolist(), scores=scores.tolist())


def option(options: pb.SearchOptions, field: str):
    """An optional field's value, or None when unset."""
    return getattr(options, field) if options.HasField(field) else None
