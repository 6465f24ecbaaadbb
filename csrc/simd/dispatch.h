// Runtime SIMD level selection. The level is chosen once, the first time it is
// asked for: the best the CPU and OS support, lowered (never raised) by the
// environment variable ANNLIB_SIMD_LEVEL=scalar|avx2|avx512|avx512_bf16.
#pragma once
#include <string>
#include <vector>

#include "../kernels/dense_scan.h"

namespace annlib {

enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

const char* SimdLevelName(SimdLevel level);
// Throws std::invalid_argument for an unknown name.
SimdLevel ParseSimdLevel(const std::string& name);
// Highest level this CPU supports (ignores the environment).
SimdLevel MaxSupportedLevel();
// The level in use: min(MaxSupportedLevel(), ANNLIB_SIMD_LEVEL). Cached.
SimdLevel ActiveLevel();
// Every level this CPU can run, lowest first (tests iterate over these).
std::vector<SimdLevel> SupportedLevels();
// Kernel table for a level; throws std::invalid_argument if unsupported here.
const DenseKernels& DenseKernelsFor(SimdLevel level);

}  // namespace annlib
