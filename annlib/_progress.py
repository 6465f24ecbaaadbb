"""Progress bars for long work (tqdm): on a terminal or in a notebook by default, never
in a log file or a pipe. Every `progress=` argument takes True, False or None (auto)."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def wanted(progress: bool | None) -> bool:
    """progress=None: shown when stderr is a terminal, or inside a Jupyter kernel."""
    if progress is not None:
        return bool(progress)
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(iterable=None, *, progress: bool | None, **kwargs) -> tqdm:
    """A tqdm bar over `iterable` (or one updated by hand), disabled unless wanted."""
    return tqdm(iterable, disable=not wanted(progress), leave=False, **kwargs)
