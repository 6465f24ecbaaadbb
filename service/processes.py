"""One server process per core behind one port (SO_REUSEPORT): the kernel
spreads connections over the processes, each with its own interpreter and GIL
(a Python gRPC server spends most of a small call holding the GIL). Indexes
are memory-mapped, so the processes share one copy of them in the page cache.

The parent reserves the port, starts the workers before it makes any gRPC
object (gRPC must not be running in a process that forks), prints their
start-up lines once all are up, forwards SIGTERM and Ctrl-C, and exits with
the worst exit code.
"""
from __future__ import annotations

import multiprocessing
import queue
import signal
import socket
import sys
from contextlib import contextmanager
from typing import Callable


@contextmanager
def reserved_port(host: str, port: int):
    """A port held open with SO_REUSEPORT while the workers bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _exit_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent dies (a kill -9 of the parent must not
    leave workers holding the port)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(work, port, lines, number):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    _exit_with_parent()
    sys.exit(work(port, lambda kind, text: lines.put((kind, text)), number))


Work = Callable[[int, Callable[[str, str], None], int], int]


def run_processes(count: int, host: str, port: int, work: Work) -> int:
    """Runs work(port, announce, number) in `count` forked processes (numbered from 0)
    sharing one port. Each calls announce("listening" | "serving" | "error", text) while it
    starts."""
    ctx = multiprocessing.get_context("fork")
    with reserved_port(host, port) as bound:
        lines = ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(work, bound, lines, i)) for i in range(count)]
        for w in workers:
            w.start()

        def stop(*_):
            for w in workers:
                if w.is_alive():
                    w.terminate()  # SIGTERM: each drains and exits 0

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)
        seen: dict[str, list[str]] = {"listening": [], "serving": [], "error": []}
        while len(seen["serving"]) + len(seen["error"]) < count and any(w.is_alive() for w in workers):
            try:
                kind, text = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen[kind].append(text)
            if kind == "listening" and len(seen["listening"]) == 1:
                print(f"{text} [{count} processes]", flush=True)
        if len(seen["serving"]) < count:
            stop()
            for text in seen["error"] or ["a worker process exited while starting"]:
                print(f"error: {text}", file=sys.stderr, flush=True)
            for w in workers:
                w.join()
            return 2
        print(seen["serving"][0], flush=True)
        for w in workers:
            w.join()
    return max(abs(w.exitcode or 0) for w in workers)
