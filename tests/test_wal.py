"""The service's write-ahead log and durable writer, in-process: replay gives the
state the writes made, also over a snapshot that already holds some of them (a
crash between a snapshot and its marker), and writes after close are refused."""
import json

import numpy as np
import pytest

import annlib
from annlib.service.durable import DurableWriter, WriterFailed, load_writable
from annlib.service.wal import MARKER, SNAPSHOT, WalCorruptError, WriteAheadLog

DIM = 6


@pytest.fixture
def saved(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, DIM)).astype(np.float32)
    annlib.builder(x, 3, "squared_l2").score_brute_force().build().save(tmp_path / "index")
    return tmp_path


def state(index) -> dict:
    ids = [i for i in range(0, 400) if index.contains(i)]
    return {i: tuple(index.vectors([i])[0]) for i in ids}


def write_some(writer, rng, count=40):
    """Random upserts and deletes, some of them to the same ids; waits for each."""
    for _ in range(count):
        ids = np.unique(rng.integers(0, 120, size=rng.integers(1, 5)))
        if rng.random() < 0.7:
            writer.upsert(ids, rng.standard_normal((len(ids), DIM)).astype(np.float32)).result(30)
        else:
            writer.delete(ids).result(30)


def reopen(tmp_path):
    index, _ = load_writable(str(tmp_path / "index"), tmp_path / "data")
    return DurableWriter(index, tmp_path / "data")


@pytest.mark.parametrize("group_commit", [True, False])
def test_replay_rebuilds_the_state_the_writes_made(saved, group_commit):
    index, _ = load_writable(str(saved / "index"), saved / "data")
    writer = DurableWriter(index, saved / "data", group_commit=group_commit)
    write_some(writer, np.random.default_rng(1))
    expected = state(index)
    writer.close(snapshot=False)  # as after kill -9: only the log has the writes
    again = reopen(saved)
    assert state(again.index) == expected and again.replayed == 40 and again.last_sequence == 40
    again.close()  # snapshot: the log is truncated, the snapshot holds the state
    assert WriteAheadLog(saved / "data").snapshot_marker()["sequence"] == 40
    third = reopen(saved)
    assert state(third.index) == expected and third.replayed == 0
    third.close()


def test_a_crash_between_snapshot_and_marker_replays_harmlessly(saved):
    index, _ = load_writable(str(saved / "index"), saved / "data")
    writer = DurableWriter(index, saved / "data")
    write_some(writer, np.random.default_rng(2))
    expected = state(index)
    writer.close(snapshot=False)
    index.save(saved / "data" / SNAPSHOT)  # the snapshot was written, its marker never was
    assert not (saved / "data" / MARKER).exists()
    again = reopen(saved)
    assert again.replayed == 40 and state(again.index) == expected
    again.close(snapshot=False)


def test_writes_after_close_are_refused(saved):
    writer = reopen(saved)
    writer.close()
    with pytest.raises(WriterFailed, match="nothing was written"):
        writer.upsert(np.array([1]), np.ones((1, DIM), np.float32))


def test_bad_writes_are_refused_before_the_log(saved):
    writer = reopen(saved)
    with pytest.raises(ValueError):
        writer.upsert(np.array([1]), np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError):
        writer.upsert(np.array([1, 2]), np.ones((1, DIM), np.float32))
    assert writer.stats()["wal_records"] == 0
    writer.close()


def test_torn_tail_is_cut_and_damage_before_the_end_refused(saved):
    writer = reopen(saved)
    write_some(writer, np.random.default_rng(3), count=5)
    writer.close(snapshot=False)
    wal = WriteAheadLog(saved / "data")
    last = wal.segments()[-1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"\x30\x00\x00\x00\x01\x02")
    assert len(list(wal.replay(after=0))) == 5 and last.stat().st_size == size
    data = bytearray(last.read_bytes())
    data[9] ^= 0xFF  # inside the first record's body
    last.write_bytes(bytes(data))
    (saved / "data" / "wal-99999999999999999999.log").write_bytes(b"")  # a newer segment after it
    with pytest.raises(WalCorruptError, match="damaged"):
        list(WriteAheadLog(saved / "data").replay(after=0))


def test_marker_is_json_with_sequence_and_time(saved):
    writer = reopen(saved)
    write_some(writer, np.random.default_rng(4), count=3)
    writer.close()
    marker = json.loads((saved / "data" / MARKER).read_text())
    assert marker["sequence"] == 3 and marker["unix_s"] > 0
