// Which family of SIMD kernels this build has: the x86 units (avx2, avx2_vnni,
// avx512, avx512_vnni, avx512_bf16, avx512_vbmi, amx), the AArch64 units (neon,
// and neon_dotprod where GCC or Clang builds it), or the scalar reference alone on
// any other CPU. setup.py compiles a unit only for its architecture, so code that
// names a unit's symbols sits under these guards (simd/dispatch.cpp).
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define ANNLIB_ARCH_X86_64 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define ANNLIB_ARCH_ARM64 1
#if !defined(_MSC_VER)
#define ANNLIB_NEON_DOTPROD_UNIT 1
#endif
#endif
