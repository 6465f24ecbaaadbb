"""The compiled core holds what its source asks for. GCC 12 deleted
__builtin_prefetch calls with the loops around them (it takes the builtin to
have no side effects): the single-query scan's prefetch of the next leaf never
reached the binary, and the re-ranking kernels lost theirs once their prefetch
loop grew. portable.h's Prefetch is an asm statement now; this reads the binary."""
import platform
import re
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest

from annlib import _core

PREFETCH = re.compile(r"\s(prefetcht0|prfm)\s")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")


def objdump():
    """The machine's own objdump (a cross toolchain's where this Python runs under qemu), else objdump."""
    cross = f"{platform.machine()}-linux-gnu-objdump"
    return cross if shutil.which(cross) else "objdump"


def disassembly():
    """Function name -> prefetch instructions in it, for every function in _core (objdump)."""
    run = subprocess.run([objdump(), "-d", "-C", "--no-show-raw-insn", _core.__file__], capture_output=True,
                         text=True, timeout=300)
    if run.returncode != 0:  # an objdump for another architecture
        pytest.skip(f"objdump cannot read {_core.__file__}: {run.stderr[-300:]}")
    out = run.stdout
    counts, current = defaultdict(int), None
    for line in out.splitlines():
        m = FUNCTION.match(line)
        if m:
            current = m.group(1)
            counts[current] += 0
        elif current is not None and PREFETCH.search(line):
            counts[current] += 1
    return counts


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("objdump") is None,
                    reason="reads the shared library with GNU objdump (Linux)")
def test_prefetches_survive_compilation():
    counts = disassembly()
    prefetching = sorted(name for name, n in counts.items() if n > 0)
    # Every ISA unit's re-ranking kernel fetches rows ahead (the scalar one included).
    rescorers = {m.group(1): counts[name] for name in counts
                 if (m := re.fullmatch(r"annlib::isa_(\w+)::Rescore\(annlib::RescoreArgs const&\)", name))}
    assert len(rescorers) >= 2, sorted(counts)[:20]
    assert all(n > 0 for n in rescorers.values()), (rescorers, prefetching)
    # A single query's scan fetches the next leaf's head while it scans this one.
    assert any("PartitionedSearch" in name for name in prefetching), prefetching
