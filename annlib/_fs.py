"""File-system steps of atomic saves: swapping two directories in one step,
claiming a directory for as long as this process lives, fsyncing a directory.

A save writes its new index into a temporary sibling directory and then puts
it in place. Where the OS can exchange two paths atomically (Linux
renameat2(RENAME_EXCHANGE), macOS renamex_np(RENAME_SWAP)) a reader sees the
old index or the new one at every instant. Elsewhere the old index is renamed
aside first, and a save killed between the two renames is finished by the
next save or load (annlib.io.recover).

Claims tell a running save's directories from a killed save's leftovers: the
saver holds an exclusive flock on each directory it owns, and the kernel drops
it when the process dies, however it dies. Without flock (Windows), a leftover
counts as dead once it is an hour old.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_UNCLAIMED_AGE_S = 3600.0  # without flock: leftovers older than this are dead


def fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened (or fsynced) there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Claim:
    """An exclusive flock on a directory, held until release() or process exit."""

    def __init__(self, fd: int | None):
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def claim(path: Path) -> Claim:
    """Claims a directory this process owns (blocking only if another claims it)."""
    if fcntl is None:
        return Claim(None)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return Claim(fd)


def claim_if_abandoned(path: Path) -> Claim | None:
    """A claim on a directory nobody holds (its saver died), or None while its
    owner lives (or when it vanished meanwhile)."""
    if fcntl is None:
        try:
            old = time.time() - path.stat().st_mtime > _UNCLAIMED_AGE_S
        except OSError:
            return None
        return Claim(None) if old else None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return Claim(fd)


def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else ctypes.CDLL(None, use_errno=True)


# renameat2's syscall number where glibc predates its wrapper (glibc < 2.28).
_RENAMEAT2_SYSCALL = {"x86_64": 316, "aarch64": 276, "ppc64le": 357, "s390x": 347}
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, getattr(errno, "EOPNOTSUPP", errno.EINVAL),
                getattr(errno, "ENOTSUP", errno.EINVAL), errno.EXDEV}


def exchange(a: Path, b: Path) -> bool:
    """Atomically swaps the directories at a and b; False where the OS or the
    file system cannot (the caller then falls back to two renames)."""
    if os.environ.get("ANNLIB_NO_ATOMIC_EXCHANGE") == "1":  # tests of the fallback
        return False
    try:
        libc = _libc()
    except OSError:
        return False
    fa, fb = os.fsencode(str(a)), os.fsencode(str(b))
    if sys.platform.startswith("linux"):
        at_fdcwd, rename_exchange = -100, 2
        if hasattr(libc, "renameat2"):
            result = libc.renameat2(at_fdcwd, fa, at_fdcwd, fb, rename_exchange)
        else:
            number = _RENAMEAT2_SYSCALL.get(os.uname().machine)
            if number is None:
                return False
            result = libc.syscall(number, at_fdcwd, fa, at_fdcwd, fb, rename_exchange)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_swap = 2
        result = libc.renamex_np(fa, fb, rename_swap)
    else:
        return False
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
