"""The indexes a server hosts, by name. Loads happen outside the lock; the
swap into the table is atomic, so a search running on an index that is
replaced or unloaded finishes on the object it started with.

With a data directory every single-vector index takes writes: its state is
DATA/NAME (durable.py: snapshot + write-ahead log), loaded in preference to
the path it was first served from."""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

import annlib

from .codec import ServiceError
from .durable import DurableWriter, load_writable
from .loading import open_index, parse_location
from .wal import WalCorruptError

log = logging.getLogger("annlib.service")


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class Hosted:
    name: str
    path: str
    index: object  # an annlib Searcher, MultiVectorIndex or ShardedSearcher
    writer: DurableWriter | None = field(default=None, compare=False)

    @property
    def is_multivector(self) -> bool:
        return isinstance(self.index, annlib.MultiVectorIndex)

    @property
    def searcher(self):
        """The single-vector searcher (a multi-vector index's pooled documents)."""
        return self.index.documents if self.is_multivector else self.index


@dataclass(frozen=True)
class WriteOptions:
    data_dir: Path
    group_commit: bool = True
    snapshot_seconds: float = 300.0
    snapshot_wal_bytes: int = 256 << 20


class IndexRegistry:
    def __init__(self, writes: WriteOptions | None = None):
        self._lock = threading.Lock()
        self._indexes: dict[str, Hosted] = {}
        self.writes = writes

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
        old = self._indexes.get(name)
        if replace and old is not None and old.writer is not None:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"index {name!r} takes writes (its state is {old.writer.data_dir}); unload it "
                               "first, and remove that directory to serve another index under this name")
        hosted = self._open(name, path)
        with self._lock:
            if not replace and name in self._indexes:
                if hosted.writer is not None:
                    hosted.writer.close(snapshot=False)
                raise ServiceError(grpc.StatusCode.ALREADY_EXISTS, f"an index named {name!r} is already hosted")
            self._indexes = {**self._indexes, name: hosted}
        return hosted

    def _open(self, name: str, path: str) -> Hosted:
        data_dir = self.writes.data_dir / name if self.writes is not None else None
        try:
            if data_dir is None:
                index, source = open_index(path), path
            else:
                index, source = load_writable(path, data_dir)
        except (ValueError, OSError) as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot load {path!r}: {exc}") from exc
        writer = None
        if data_dir is not None and not isinstance(index, annlib.MultiVectorIndex):
            try:
                writer = DurableWriter(index, data_dir, group_commit=self.writes.group_commit,
                                       snapshot_seconds=self.writes.snapshot_seconds,
                                       snapshot_wal_bytes=self.writes.snapshot_wal_bytes)
            except (WalCorruptError, OSError) as exc:
                raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"cannot open the write-ahead log of {name!r}: {exc}") from exc
            log.info("index %r: loaded %s, replayed %d logged writes (sequence %d)", name, source,
                     writer.replayed, writer.last_sequence)
        return Hosted(name, path if parse_location(path)[0] else str(Path(path).absolute()), index, writer)

    def unload(self, name: str) -> None:
        with self._lock:
            hosted = self.get(name)
            self._indexes = {k: v for k, v in self._indexes.items() if k != name}
        if hosted.writer is not None:
            hosted.writer.close()

    def close(self) -> None:
        """Finishes the queued writes of every index and snapshots them (at shutdown)."""
        for hosted in self.all():
            if hosted.writer is not None:
                hosted.writer.close()
