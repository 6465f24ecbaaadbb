"""The write-ahead log of one writable index: numbered records of upserts and
deletes in segment files, each record length-prefixed and CRC-checked, so a
write torn by a crash is recognised and dropped as a whole.

    DIR/wal-<first sequence>.log   segments, oldest first
    DIR/snapshot.json              {"sequence": S, "unix_s": T}: the snapshot in
                                   DIR/snapshot holds every write up to S

Records replay idempotently (an upsert sets points, a delete removes the ids
still held), so a crash between writing a snapshot and its marker only means
some records are replayed over a state that already has them.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

UPSERT, DELETE = 1, 2
_FRAME = struct.Struct("<II")          # body length, CRC-32 of the body
_BODY = struct.Struct("<QBxxxII")      # sequence, op, (pad), rows, dim
_MAX_BODY = 1 << 31                    # larger lengths are damage, not records
MARKER = "snapshot.json"
SNAPSHOT = "snapshot"


class WalCorruptError(ValueError):
    """A damaged record before the end of the log (not a torn tail)."""


@dataclass(frozen=True)
class Record:
    sequence: int
    op: int
    ids: np.ndarray                    # int64 [n]
    vectors: np.ndarray | None         # float32 [n, d] for upserts

    def encode(self) -> bytes:
        d = 0 if self.vectors is None else self.vectors.shape[1]
        body = b"".join([_BODY.pack(self.sequence, self.op, len(self.ids), d),
                         np.ascontiguousarray(self.ids, dtype="<i8").tobytes(),
                         b"" if self.vectors is None else np.ascontiguousarray(self.vectors, dtype="<f4").tobytes()])
        return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _decode(body: bytes) -> Record:
    sequence, op, n, d = _BODY.unpack_from(body)
    if op not in (UPSERT, DELETE) or len(body) != _BODY.size + n * 8 + n * d * 4 or (op == DELETE) != (d == 0):
        raise ValueError("malformed record")
    ids = np.frombuffer(body, dtype="<i8", count=n, offset=_BODY.size).astype(np.int64)
    vectors = None
    if op == UPSERT:
        vectors = np.frombuffer(body, dtype="<f4", count=n * d, offset=_BODY.size + n * 8).reshape(n, d)
    return Record(sequence, op, ids, vectors.astype(np.float32) if vectors is not None else None)


def _read_segment(path: Path) -> tuple[list[tuple[Record, int]], int, int]:
    """((record, its bytes on disk) for each whole valid record, bytes they hold, file size)."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if length > _MAX_BODY or end > len(data):
            break
        body = data[offset + _FRAME.size:end]
        if zlib.crc32(body) != crc:
            break
        try:
            records.append((_decode(body), end - offset))
        except (ValueError, struct.error):
            break
        offset = end
    return records, offset, len(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_name(first_sequence: int) -> str:
    return f"wal-{first_sequence:020d}.log"


class WriteAheadLog:
    """Append, fsync, rotate at snapshots. Not thread-safe: one writer thread owns it."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = None
        self.records_since_snapshot = 0
        self.bytes_since_snapshot = 0

    # ---- reading, at start-up ----------------------------------------------------

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("wal-*.log"))

    def snapshot_marker(self) -> dict:
        path = self.directory / MARKER
        if not path.is_file():
            return {"sequence": 0, "unix_s": 0.0}
        marker = json.loads(path.read_text())
        return {"sequence": int(marker["sequence"]), "unix_s": float(marker["unix_s"])}

    def replay(self, after: int) -> Iterator[Record]:
        """The records with sequence > after, oldest first. A damaged tail of the newest
        segment (a write cut short by a crash: it was never acknowledged) is cut off;
        damage anywhere else raises WalCorruptError."""
        segments = self.segments()
        for i, path in enumerate(segments):
            records, valid, size = _read_segment(path)
            if valid < size:
                if i != len(segments) - 1:
                    raise WalCorruptError(f"{path} is damaged at byte {valid} of {size}, before the end of the log; "
                                          "the writes after it cannot be trusted (restore the data directory from "
                                          "a backup, or remove this segment and everything after it to keep the "
                                          "writes before it)")
                with open(path, "r+b") as f:  # a torn final write: never acknowledged
                    f.truncate(valid)
                    os.fsync(f.fileno())
            for record, nbytes in records:
                if record.sequence > after:
                    self.records_since_snapshot += 1
                    self.bytes_since_snapshot += nbytes
                    yield record

    # ---- writing -----------------------------------------------------------------

    def open_segment(self, first_sequence: int) -> None:
        """New writes go to a fresh segment (never appended after a possibly torn tail)."""
        if self._file is not None:
            self._file.close()
        path = self.directory / _segment_name(first_sequence)
        self._file = open(path, "ab", buffering=0)
        _fsync_dir(self.directory)

    def append(self, encoded: list[bytes], *, sync_each: bool = False) -> None:
        """Writes records and fsyncs: once for all of them (group commit), or after each."""
        for chunk in encoded:
            self._file.write(chunk)
            if sync_each:
                os.fsync(self._file.fileno())
        if not sync_each:
            os.fsync(self._file.fileno())
        self.records_since_snapshot += len(encoded)
        self.bytes_since_snapshot += sum(len(c) for c in encoded)

    def snapshot_written(self, sequence: int, unix_s: float) -> None:
        """After the snapshot holding every write up to `sequence` is on disk: records it,
        starts a new segment and removes the old ones."""
        tmp = self.directory / (MARKER + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"sequence": sequence, "unix_s": unix_s}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / MARKER)
        _fsync_dir(self.directory)
        old = self.segments()
        self.open_segment(sequence + 1)
        for path in old:
            if path.name != _segment_name(sequence + 1):
                path.unlink()
        _fsync_dir(self.directory)
        self.records_since_snapshot = 0
        self.bytes_since_snapshot = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
