"""Ctrl-C and time limits: long searches and builds stop within about a second, on the
main thread and in a thread pool, and annlib.time_limit raises TimeoutError. Each case
runs a child process that starts work taking tens of seconds; the test sends it a real
SIGINT and times how long it takes to stop."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import annlib
from conftest import run_python, start_python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

_CHILD = r"""
import signal, sys, time
# A child started from a background job inherits SIGINT ignored (POSIX shells do that to
# `cmd &`); a terminal's Ctrl-C reaches Python's default handler, which is what is tested.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import annlib
from concurrent.futures import ThreadPoolExecutor

case = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((400_000, 128), dtype=np.float32)
q = rng.standard_normal((40_000, 128), dtype=np.float32)   # exact search: ~2e12 multiply-adds
if case in ("brute_force", "thread_pool"):
    index = annlib.builder(x, 10, "squared_l2").score_brute_force().build()
if case == "quantized":
    index = (annlib.builder(x[:20_000], 10, "dot_product").tree(20, 20).score_ah(1).reorder(20_000)
             .build(progress=False))
    q = np.repeat(q[:2_000], 20, axis=0)                   # every leaf, every candidate reordered
print("ready", flush=True)
try:
    if case == "brute_force":
        index.search_batched(q)
    elif case == "quantized":
        index.search_batched(q, pre_reorder_num_neighbors=20_000)
    elif case == "build":
        annlib.builder(x, 10, "dot_product").tree(2000, 10, training_sample_size=400_000).score_ah(2).build()
    elif case == "thread_pool":
        with ThreadPoolExecutor(2) as pool:
            future = pool.submit(index.search_batched, q)
            try:
                future.result()
            except KeyboardInterrupt:
                # The main thread got Ctrl-C; the search in the pool's thread must stop too
                # (else leaving the with-block would wait for it to finish).
                try:
                    future.result(timeout=30)
                except KeyboardInterrupt:
                    print("worker stopped", flush=True)
                raise
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
print("finished without interruption", flush=True)
sys.exit(1)
"""


@pytest.mark.parametrize("case", ["brute_force", "quantized", "build", "thread_pool"])
def test_ctrl_c_stops_long_work_within_about_a_second(case):
    child = start_python("-c", _CHILD, case, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(0.5)  # well inside the work
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=60)
        stopped = time.monotonic() - sent
    finally:
        child.kill()
    assert child.returncode == 0, out + err
    assert "interrupted" in out
    if case == "thread_pool":
        assert "worker stopped" in out
    # About a second; the slack is for a busy machine (uninterrupted, each takes 20 s or more).
    assert stopped < 5.0, f"took {stopped:.1f} s to stop"


def test_time_limit_raises_timeout_error_and_restores_the_previous_limit(rng):
    x = rng.standard_normal((200_000, 64)).astype(np.float32)
    q = rng.standard_normal((20_000, 64)).astype(np.float32)
    index = annlib.builder(x, 10, "dot_product").score_brute_force().build()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="time limit"):
        with annlib.time_limit(0.2):
            index.search_batched(q)
    assert time.monotonic() - start < 5.0
    with annlib.time_limit(60):
        with annlib.time_limit(1000):  # nested: the earlier deadline stays
            assert 0 < annlib._core.set_thread_deadline(-1) <= 60
            annlib._core.set_thread_deadline(60)
        ids, _ = index.search_batched(q[:50])  # well within the limit
    assert annlib._core.set_thread_deadline(-1) < 0  # no limit is left behind
    np.testing.assert_array_equal(ids, index.search_batched(q[:50])[0])
    with pytest.raises(ValueError, match="seconds"):
        with annlib.time_limit(-1):
            pass


_FORKED_FROM_A_THREAD = r"""
import os, signal, threading, time, warnings
import numpy as np
import annlib

warnings.simplefilter("ignore", DeprecationWarning)  # fork() with other threads running
rng = np.random.default_rng(0)
x = rng.standard_normal((20_000, 64)).astype(np.float32)
index = annlib.builder(x, 10, "dot_product").score_brute_force().build()
q = rng.standard_normal((2_000, 64)).astype(np.float32)
start = time.perf_counter()
index.search_batched(q, num_threads=1)
q = np.tile(q, (max(1, int(3.0 / (time.perf_counter() - start))), 1))  # about 3 s of search


class Stop(Exception):
    pass


def raise_stop(*_):
    raise Stop()


def fork_and_search():
    pid = os.fork()
    if pid == 0:  # the child runs on this thread alone: its main thread now
        signal.signal(signal.SIGUSR1, raise_stop)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        began = time.perf_counter()
        try:
            index.search_batched(q, num_threads=1)
        except Stop:
            os._exit(0 if time.perf_counter() - began < 2.0 else 2)
        os._exit(1)
    print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)


t = threading.Thread(target=fork_and_search)
t.start()
t.join()
"""


def test_a_child_forked_from_another_thread_polls_on_its_new_main_thread():
    """After fork() the child runs on the forking thread alone, which Python makes its main
    thread: that thread's calls must poll for signal handlers (a handler raising mid-call
    stops a 3 s search within the poll interval, not after it)."""
    done = run_python("-c", _FORKED_FROM_A_THREAD, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", "0"], done.stdout + done.stderr
