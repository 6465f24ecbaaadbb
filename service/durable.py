"""Durable writes to one hosted index: the Upsert and Delete RPCs hand their
checked writes to a DurableWriter, whose one thread logs them (write-ahead
log, fsync), applies them to the index in log order, and only then answers.

Group commit: every write waiting when the thread comes round shares one
fsync, and consecutive upserts (or deletes) are applied as one library call.
Snapshots (the library's atomic save() into DATA/NAME/snapshot) are taken on
the same thread every --snapshot-seconds, or once the log passes
--snapshot-wal-mb, and on shutdown; each truncates the log. On start the
newest snapshot is loaded (else the index's own path) and the log replayed.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .loading import open_index

from .wal import DELETE, SNAPSHOT, UPSERT, Record, WriteAheadLog

log = logging.getLogger("annlib.service")

_MAX_GROUP = 4096            # writes sharing one fsync at most
_MAX_GROUP_BYTES = 64 << 20


@dataclass
class _Write:
    op: int
    ids: np.ndarray
    vectors: np.ndarray | None
    done: Future


class WriterFailed(RuntimeError):
    """The log could not be written; the index takes no more writes until a restart."""


def load_writable(path: str, data_dir: Path):
    """(index, source): the index as of its newest snapshot in data_dir, else the one at
    path; the log is replayed by DurableWriter."""
    snapshot = data_dir / SNAPSHOT
    if snapshot.is_dir():
        return open_index(path, path=snapshot), snapshot
    return open_index(path), path


class DurableWriter:
    def __init__(self, index, data_dir: Path, *, group_commit: bool = True, snapshot_seconds: float = 300.0,
                 snapshot_wal_bytes: int = 256 << 20):
        self.index = index
        self.data_dir = Path(data_dir)
        self.group_commit = group_commit
        self.snapshot_seconds = snapshot_seconds
        self.snapshot_wal_bytes = snapshot_wal_bytes
        self.wal = WriteAheadLog(self.data_dir)
        marker = self.wal.snapshot_marker()
        self.last_snapshot_unix_s = marker["unix_s"]
        self.last_sequence = marker["sequence"]
        self.replayed = 0
        for run in _runs(self.wal.replay(after=self.last_sequence)):
            _apply(index, run)
            self.replayed += len(run)
            self.last_sequence = run[-1].sequence
        self.wal.open_segment(self.last_sequence + 1)
        self._queue: queue.Queue = queue.Queue()
        self._failed: str | None = None
        self._closed = False
        self._submit_lock = threading.Lock()  # a write is queued before the stop, or refused
        self._next_snapshot = time.monotonic() + snapshot_seconds
        self._thread = threading.Thread(target=self._run, name=f"annlib-wal-{self.data_dir.name}", daemon=True)
        self._thread.start()

    # ---- called by the RPC threads --------------------------------------------------

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> Future:
        self.index.check_upsert(ids, vectors)  # a logged write must apply
        return self._submit(_Write(UPSERT, ids, np.ascontiguousarray(vectors, dtype=np.float32), Future()))

    def delete(self, ids: np.ndarray) -> Future:
        return self._submit(_Write(DELETE, ids, None, Future()))

    def _submit(self, write: _Write) -> Future:
        if self._failed:
            raise WriterFailed(self._failed)
        with self._submit_lock:
            if self._closed:
                raise WriterFailed("the index was unloaded or the server is stopping; nothing was written")
            self._queue.put(write)
        return write.done

    def stats(self) -> dict:
        return {"last_snapshot_unix_s": self.last_snapshot_unix_s, "wal_records": self.wal.records_since_snapshot,
                "wal_bytes": self.wal.bytes_since_snapshot, "last_sequence": self.last_sequence,
                "pending": self._queue.qsize()}

    def close(self, *, snapshot: bool = True) -> None:
        """Finishes the writes already queued, then (by default) takes a snapshot."""
        with self._submit_lock:
            self._closed = True
            self._queue.put(("stop", snapshot))
        self._thread.join()

    # ---- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=max(0.05, self._next_snapshot - time.monotonic()))
            except queue.Empty:
                self._maybe_snapshot()
                continue
            if isinstance(first, tuple):  # stop
                if first[1] and self.wal.records_since_snapshot and not self._failed:
                    self._snapshot()
                self.wal.close()
                return
            group, size = [first], _nbytes(first)
            while len(group) < _MAX_GROUP and size < _MAX_GROUP_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):
                    self._queue.put(item)  # handled after this group
                    break
                group.append(item)
                size += _nbytes(item)
            self._commit(group)
            self._maybe_snapshot()

    def _commit(self, group: list[_Write]) -> None:
        if self._failed:
            for w in group:
                w.done.set_exception(WriterFailed(self._failed))
            return
        records = [Record(self.last_sequence + 1 + i, w.op, w.ids, w.vectors) for i, w in enumerate(group)]
        try:
            self.wal.append([r.encode() for r in records], sync_each=not self.group_commit)
        except OSError as exc:
            # What reached the disk is unknown: stop taking writes (a restart replays what is there).
            self._failed = f"the write-ahead log in {self.data_dir} failed ({exc}); restart the server"
            log.error("%s", self._failed)
            for w in group:
                w.done.set_exception(WriterFailed(self._failed))
            return
        self.last_sequence = records[-1].sequence
        try:
            results = []
            for run in _runs(records):
                results.extend(_apply(self.index, run))
        except Exception as exc:  # logged but not applied: serving it would diverge from the log
            self._failed = f"applying logged writes failed ({exc}); restart the server to replay the log"
            log.exception("%s", self._failed)
            for w in group:
                w.done.set_exception(WriterFailed(self._failed))
            return
        for w, r, deleted in zip(group, records, results):
            w.done.set_result((r.sequence, deleted))

    def _maybe_snapshot(self) -> None:
        due = time.monotonic() >= self._next_snapshot or self.wal.bytes_since_snapshot >= self.snapshot_wal_bytes
        if due and self.wal.records_since_snapshot and not self._failed:
            self._snapshot()
        if time.monotonic() >= self._next_snapshot:
            self._next_snapshot = time.monotonic() + self.snapshot_seconds

    def _snapshot(self) -> None:
        start, now = time.monotonic(), time.time()
        try:
            self.index.save(self.data_dir / SNAPSHOT)  # atomic: the previous snapshot stays until this one is whole
            self.wal.snapshot_written(self.last_sequence, now)
        except Exception as exc:  # the log still holds every write: serving goes on
            log.error("snapshot of %s failed (%s); the log keeps every write and grows until one succeeds",
                      self.data_dir, exc)
            return
        self.last_snapshot_unix_s = now
        log.info("snapshot of %s at sequence %d in %.2f s", self.data_dir.name, self.last_sequence,
                 time.monotonic() - start)


def _nbytes(write: _Write) -> int:
    return write.ids.nbytes + (0 if write.vectors is None else write.vectors.nbytes)


def _runs(records):
    """Consecutive records of the same kind, in order: each run is one library call."""
    run: list[Record] = []
    for record in records:
        if run and record.op != run[-1].op:
            yield run
            run = []
        run.append(record)
    if run:
        yield run


def _apply(index, run: list[Record]) -> list[int]:
    """Applies a run of upserts or deletes; for each record, the ids it deleted (0 for
    upserts). Replaying a record the index already reflects changes nothing."""
    if run[0].op == UPSERT:
        ids = np.concatenate([r.ids for r in run])
        vectors = np.concatenate([r.vectors for r in run])
        # Within the run a later write of an id wins.
        _, last_from_end = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - last_from_end)
        index.upsert(ids[keep], vectors[keep])
        return [0] * len(run)
    counts, gone = [], set()
    union = np.unique(np.concatenate([r.ids for r in run]))
    held = set(union[index.contains(union)].tolist())
    for r in run:
        mine = [i for i in r.ids.tolist() if i in held and i not in gone]
        gone.update(mine)
        counts.append(len(mine))
    if gone:
        index.delete(np.fromiter(gone, dtype=np.int64, count=len(gone)))
    return counts
