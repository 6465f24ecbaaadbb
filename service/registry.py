"""The indexes a server hosts, by name. Loads happen outside the lock; the
swap into the table is atomic, so a search running on an index that is
replaced or unloaded finishes on the object it started with."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

import annlib

from .codec import ServiceError


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class Hosted:
    name: str
    path: str
    index: object  # an annlib Searcher or MultiVectorIndex

    @property
    def is_multivector(self) -> bool:
        return isinstance(self.index, annlib.MultiVectorIndex)

    @property
    def searcher(self):
        """The single-vector searcher (a multi-vector index's pooled documents)."""
        return self.index.documents if self.is_multivector else self.index


class IndexRegistry:
    def __init__(self):
        self._lock = threading.Lock()
        self._indexes: dict[str, Hosted] = {}

    def get(self, name: str) -> Hosted:
        hosted = self._indexes.get(name)
        if hosted is None:
            known = ", ".join(sorted(self._indexes)) or "none"
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"no index named {name!r} (hosted: {known})")
        return hosted

    def all(self) -> list[Hosted]:
        return [self._indexes[name] for name in sorted(self._indexes)]

    def __len__(self) -> int:
        return len(self._indexes)

    def load(self, name: str, path: str, *, replace: bool = False) -> Hosted:
        if not _NAME.fullmatch(name):
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"index name {name!r} must be letters, digits, '_', '-' or '.'")
        if not replace and name in self._indexes:
            raise ServiceError(grpc.StatusCode.ALREADY_EXISTS, f"an index named {name!r} is already hosted; "
                               "set replace to swap it")
        try:
            index = annlib.load(Path(path))
        except (ValueError, OSError) as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot load {path!r}: {exc}") from exc
        hosted = Hosted(name, str(Path(path).absolute()), index)
        with self._lock:
            if not replace and name in self._indexes:
                raise ServiceError(grpc.StatusCode.ALREADY_EXISTS, f"an index named {name!r} is already hosted")
            self._indexes = {**self._indexes, name: hosted}
        return hosted

    def unload(self, name: str) -> None:
        with self._lock:
            self.get(name)
            self._indexes = {k: v for k, v in self._indexes.items() if k != name}
