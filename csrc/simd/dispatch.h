// Runtime SIMD level selection. The level is chosen once, the first time it is
// asked for: the best the CPU and OS support, lowered (never raised) by the
// environment variable ANNLIB_SIMD_LEVEL: scalar|avx2|avx2_vnni|avx512|avx512_vnni|avx512_bf16
// on x86-64, scalar|neon|neon_dotprod on AArch64, scalar elsewhere (simd/arch.h). A CPU need not
// have every level below its best (AVX-512 CPUs without AVX-VNNI have no avx2_vnni):
// the level used is the best supported one at or below the one asked for.
#pragma once
#include <string>
#include <vector>

#include "../kernels/dense_scan.h"
#include "../kernels/lut16.h"
#include "../kernels/maxsim.h"

namespace annlib {

// (Values are names, not ranks: ranks are places in SupportedLevels().)
enum class SimdLevel : int {
  kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3, kNeon = 4, kAvx512Vnni = 5, kAvx2Vnni = 6, kNeonDotprod = 7
};

const char* SimdLevelName(SimdLevel level);
// Throws std::invalid_argument for an unknown name.
SimdLevel ParseSimdLevel(const std::string& name);
// Highest level this CPU supports (ignores the environment).
SimdLevel MaxSupportedLevel();
// The level in use: the best supported level at or below ANNLIB_SIMD_LEVEL. Cached.
SimdLevel ActiveLevel();
// Every level this CPU can run, lowest first (tests iterate over these); a level is
// "lower" than another by its place in the architecture's list of levels.
std::vector<SimdLevel> SupportedLevels();
enum class Bf16Variant : int { kAuto = 0, kNative = 1, kWidened = 2, kAmx = 3 };
// Auto picks AMX tiles (bf16 and int8 scans) where the CPU and OS allow them,
// else vdpbf16ps on AMD and widening to float32 elsewhere (vdpbf16ps measured
// at half the float32 FMA rate on Intel Sapphire Rapids and later).
Bf16Variant ParseBf16Variant(const std::string& name);

// Kernel table for a level; throws std::invalid_argument if unsupported here.
const DenseKernels& DenseKernelsFor(SimdLevel level, Bf16Variant bf16 = Bf16Variant::kAuto);
// LUT16 scan for a level (the avx512_vnni and avx512_bf16 levels use the VBMI
// kernel where the CPU has VBMI, else the AVX-512BW one; avx2_vnni the AVX2 one).
Lut16ScanFn Lut16KernelFor(SimdLevel level);
// Multi-query LUT16 scan for a level (several queries per pass over a list).
Lut16ScanMultiFn Lut16MultiKernelFor(SimdLevel level);
// LUT16 table builder for a level.
Lut16BuildFn Lut16BuildFor(SimdLevel level);
// MaxSim kernel for a level (avx2_vnni uses the AVX2 kernel, avx512_vnni and avx512_bf16 the
// AVX-512 one).
MaxSimFn MaxSimKernelFor(SimdLevel level);

}  // namespace annlib
