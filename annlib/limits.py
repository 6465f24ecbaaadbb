"""Time limits for annlib calls (the Ctrl-C machinery of the C++ core, csrc/util/cancel.h).

    with annlib.time_limit(0.5):
        ids, scores = searcher.search_batched(queries)   # TimeoutError after 0.5 s

Long calls check their limit between work items (every few milliseconds of work
on each thread), so they stop soon after it passes; their results are dropped.
Ctrl-C stops them the same way, raising KeyboardInterrupt, also when they run in
a thread other than the main one. Updates (upsert, delete, compact) are never
stopped half-way.
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager

from . import _core


@contextmanager
def time_limit(seconds):
    """annlib calls started on this thread inside the block raise TimeoutError once
    `seconds` have passed (None: no limit). Nested limits keep the earlier deadline."""
    if seconds is None:
        yield
        return
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or math.isnan(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a number >= 0 or None, got {seconds!r}")
    previous = _core.set_thread_deadline(-1.0)
    _core.set_thread_deadline(min(float(seconds), previous) if previous >= 0 else float(seconds))
    try:
        yield
    finally:
        _core.set_thread_deadline(previous)
