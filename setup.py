"""Builds annlib._core from csrc/ (C++17, pybind11).

The SIMD kernels are one translation unit per ISA (csrc/kernels/*_<isa>.cpp).
Each ISA's units are compiled with that ISA's flags into a static library of
their own (setuptools' build_clib, which takes per-library flags), and only
for the architecture that has it: the x86 units on x86-64, the NEON unit on
AArch64 (where NEON is baseline), none elsewhere (the scalar reference then
runs alone). Everything else is compiled for the baseline target, so a wheel
runs on any CPU of its architecture and picks its SIMD level at run time
(csrc/simd/dispatch.cpp). ANNLIB_NATIVE=1 adds -march=native everywhere
(opt-in only); NPY_NUM_BUILD_JOBS sets the parallel compile jobs.
"""
import os
import platform
import subprocess
import sys
import sysconfig
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

MACHINE = platform.machine().lower()
ARCH = "x86_64" if MACHINE in ("x86_64", "amd64") else "arm64" if MACHINE in ("aarch64", "arm64") else "other"
# An ARCHFLAGS cross build on macOS (cibuildwheel's arm64 on an x86 runner) names its target there.
if sys.platform == "darwin" and os.environ.get("ARCHFLAGS", "").strip() in ("-arch arm64", "-arch x86_64"):
    ARCH = "arm64" if "arm64" in os.environ["ARCHFLAGS"] else "x86_64"
MSVC = sys.platform == "win32"

_GCC_X86 = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "avx2_vnni": ["-mavx2", "-mfma", "-mf16c", "-mavxvnni"],
    "avx512": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"],
    "avx512_vnni": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
                    "-mavx512vnni"],
    "avx512_bf16": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
                    "-mavx512vnni", "-mavx512bf16"],
    "avx512_vbmi": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
                    "-mavx512vnni", "-mavx512vbmi"],
    "amx": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
            "-mavx512vnni", "-mavx512bf16", "-mamx-tile", "-mamx-bf16"],
}
_MSVC_X86 = {"avx2": ["/arch:AVX2"], "avx2_vnni": ["/arch:AVX2"], "avx512": ["/arch:AVX512"],
             "avx512_vnni": ["/arch:AVX512"], "avx512_bf16": ["/arch:AVX512"], "avx512_vbmi": ["/arch:AVX512"]}

# ISA -> compile flags, for the ISAs this build's architecture has. AMX is requested
# from the OS on Linux only (dispatch.cpp), so other systems do not build its unit.
if ARCH == "x86_64":
    ISA_FLAGS = _MSVC_X86 if MSVC else {isa: flags for isa, flags in _GCC_X86.items()
                                        if isa != "amx" or sys.platform.startswith("linux")}
elif ARCH == "arm64":
    # The dot product unit is built by GCC and Clang only (simd/arch.h: ANNLIB_NEON_DOTPROD_UNIT).
    ISA_FLAGS = {"neon": []} if MSVC else {"neon": [], "neon_dotprod": ["-march=armv8.2-a+dotprod"]}
else:
    ISA_FLAGS = {}
ALL_ISAS = ("avx512_bf16", "avx512_vbmi", "avx512_vnni", "avx2_vnni", "avx512", "avx2", "amx", "neon_dotprod",
            "neon")  # longest suffix first


def isa_of(source):
    """The ISA of a kernel unit from its file name suffix, or None for baseline code."""
    stem = source[:-len(".cpp")]
    for isa in ALL_ISAS:
        if stem.endswith("_" + isa):
            return isa
    return None


if MSVC:
    common_flags = ["/O2", "/std:c++17", "/EHsc", "/fp:precise"]
else:
    # -ffp-contract=off: scalar arithmetic rounds the same in every unit (no silent
    # FMA contraction), so the SIMD levels agree with the scalar reference.
    # -fno-wrapv undoes Python's CFLAGS' -fwrapv (sysconfig's, which setuptools passes first):
    # with signed overflow defined to wrap, GCC cannot widen a loop's int32 index once and
    # sign-extends it on every step (5 of the AVX2 LUT16 loop's 30 instructions). annlib's
    # code never relies on signed wrap-around (the sanitizer builds check overflow).
    common_flags = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-wrapv", "-fvisibility=hidden", "-Wall",
                    "-Wextra", "-Wno-unused-parameter"]
    if os.environ.get("ANNLIB_NATIVE") == "1":
        common_flags.append("-march=native")
extra_link_args = [] if MSVC else ["-pthread"]
# ANNLIB_SANITIZE=thread or address,undefined: a test build for .ci/sanitize (never a release).
SANITIZE = os.environ.get("ANNLIB_SANITIZE")
if SANITIZE:
    common_flags += [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
    extra_link_args += [f"-fsanitize={SANITIZE}"]

sources = sorted(glob("csrc/**/*.cpp", recursive=True))
# Headers, including the -inl.h kernel bodies every ISA unit includes: a change to
# any of them rebuilds the libraries and the extension (setuptools only compares
# the dependencies it is told of with its outputs).
headers = sorted(glob("csrc/**/*.h", recursive=True))


def compiler_is_gcc():
    """Whether the compiler setuptools will run is GCC (macOS's gcc is clang; a wrapper such as
    ccache, or a compiler that cannot be run, counts as not GCC: the flags below are optional)."""
    if MSVC:
        return False
    command = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[:1]
    try:
        version = subprocess.run(command + ["--version"], capture_output=True, text=True, timeout=60).stdout.lower()
    except (OSError, subprocess.SubprocessError):
        return False
    return "clang" not in version and ("gcc" in version or "free software foundation" in version)


# The LUT16 scans' inner loops keep their accumulators in registers only with these (GCC 12):
# partial redundancy elimination gives each accumulator one copy per vector type the intrinsics
# cast it to, and the register allocator then moves every one of them on every iteration (4 of
# 23 instructions in the AVX2 loop, 16 of 64 in the AVX-512 four-query loop, 6 of 19 on NEON);
# scheduling before allocation removes the rest in the VBMI unit (with its asm dot product).
# Measured on the Xeon, one thread, batches: 1.03-1.06x at the avx512_bf16 level, 1.00-1.05x
# at avx2. They build in libraries of their own.
LUT16_GCC_FLAGS = ["-fno-tree-pre", "-fschedule-insns", "-fsched-pressure"] if compiler_is_gcc() else []


def is_lut16_scan(source):
    return os.path.basename(source).startswith("lut16_")


# Static libraries per ISA (its LUT16 scan in one, its other kernels in another), linked into the
# extension (build_ext adds build_clib's output).
libraries = [
    (f"annlib_{isa}{suffix}", {"sources": units, "cflags": common_flags + flags + extra, "obj_deps": {"": headers}})
    for isa, flags in ISA_FLAGS.items()
    for suffix, extra, units in (
        ("", [], [s for s in sources if isa_of(s) == isa and not is_lut16_scan(s)]),
        ("_lut16", LUT16_GCC_FLAGS, [s for s in sources if isa_of(s) == isa and is_lut16_scan(s)]))
    if units
]

# One compiler process per core for both the libraries and the extension.
ParallelCompile("NPY_NUM_BUILD_JOBS", needs_recompile=lambda obj, src: True).install()



class BuildExtWithKernels(build_ext):
    """build_ext that builds the ISA libraries first (a plain `build_ext --inplace`
    does not run build_clib on its own)."""

    def run(self):
        if self.distribution.has_c_libraries():
            self.run_command("build_clib")
        super().run()


ext_modules = [
    Pybind11Extension(
        "annlib._core",
        [s for s in sources if isa_of(s) is None],
        cxx_std=17,
        extra_compile_args=common_flags,
        extra_link_args=extra_link_args,
        # The ISA units are linked in from the libraries: a change there relinks the extension.
        depends=headers + [s for s in sources if isa_of(s) is not None],
    )
]

setup(ext_modules=ext_modules, libraries=libraries, cmdclass={"build_ext": BuildExtWithKernels})
