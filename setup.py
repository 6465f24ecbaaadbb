"""Builds annlib._core from csrc/ (C++17, pybind11).

Each ISA-specific translation unit gets its own flags, picked from its file
name suffix; everything else is compiled for the baseline x86-64 target, so
the wheel runs on any x86-64 CPU and chooses its SIMD level at run time.
Set ANNLIB_NATIVE=1 to add -march=native to every unit (opt-in only).
"""
import os
import platform
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")

ISA_FLAGS = {
    "_avx2.cpp": ["-mavx2", "-mfma", "-mf16c"],
    "_avx512.cpp": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"],
    "_avx512_bf16.cpp": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq",
                          "-mavx512vl", "-mavx512vnni", "-mavx512bf16"],
    "_amx.cpp": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl",
                 "-mavx512vnni", "-mavx512bf16", "-mamx-tile", "-mamx-bf16"],
}


def isa_flags_for(source):
    # Longest suffix first: "_avx512_bf16.cpp" must not match "_avx512.cpp" rules.
    for suffix in sorted(ISA_FLAGS, key=len, reverse=True):
        if source.endswith(suffix):
            return ISA_FLAGS[suffix]
    return []


class BuildExtPerFileFlags(build_ext):
    """build_ext that appends per-file ISA flags at compile time."""

    def build_extensions(self):
        compiler = self.compiler
        original_compile = compiler._compile

        def compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts):
            extra = list(extra_postargs) + (isa_flags_for(src) if IS_X86 else [])
            return original_compile(obj, src, ext, cc_args, extra, pp_opts)

        compiler._compile = compile_one
        super().build_extensions()


def sources():
    files = sorted(glob("csrc/**/*.cpp", recursive=True))
    if not IS_X86:  # only the scalar kernels exist for other architectures
        files = [f for f in files if not isa_flags_for(f)]
    return files


# -ffp-contract=off: scalar arithmetic rounds the same in every ISA unit (no
# silent FMA contraction), so all SIMD levels return bit-identical scores.
extra_compile_args = ["-O3", "-ffp-contract=off", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
extra_link_args = ["-pthread"]
if os.environ.get("ANNLIB_NATIVE") == "1":
    extra_compile_args.append("-march=native")
# ANNLIB_SANITIZE=thread or address,undefined: a test build for .ci/sanitize (never a release).
SANITIZE = os.environ.get("ANNLIB_SANITIZE")
if SANITIZE:
    extra_compile_args += [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
                           "-g", "-O1"]
    extra_link_args += [f"-fsanitize={SANITIZE}"]

# One compiler process per core (NPY_NUM_BUILD_JOBS overrides); unchanged files are
# skipped when building in place.
ParallelCompile("NPY_NUM_BUILD_JOBS", needs_recompile=lambda obj, src: True).install()

ext_modules = [
    Pybind11Extension(
        "annlib._core",
        sources(),
        cxx_std=17,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
        define_macros=[] if IS_X86 else [("ANNLIB_SCALAR_ONLY", "1")],
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExtPerFileFlags})
