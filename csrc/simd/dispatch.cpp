#include "dispatch.h"

#include <cstdlib>
#include <stdexcept>

namespace annlib {

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx512Bf16: return "avx512_bf16";
  }
  return "unknown";
}

SimdLevel ParseSimdLevel(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(SimdLevel::kAvx512Bf16); ++i) {
    auto level = static_cast<SimdLevel>(i);
    if (name == SimdLevelName(level)) return level;
  }
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "': expected one of scalar, avx2, avx512, avx512_bf16");
}

SimdLevel MaxSupportedLevel() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's checks include the OS (XGETBV) support for the wider registers.
  __builtin_cpu_init();
  // F16C (float16 <-> float32) came with every AVX2 CPU; checked all the same.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512vnni") &&
                    __builtin_cpu_supports("avx512bf16");
  if (bf16) return SimdLevel::kAvx512Bf16;
  if (avx512) return SimdLevel::kAvx512;
  if (avx2) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kScalar;
}

static SimdLevel ComputeActiveLevel() {
  SimdLevel level = MaxSupportedLevel();
  const char* env = std::getenv("ANNLIB_SIMD_LEVEL");
  if (env != nullptr && env[0] != '\0') {
    SimdLevel wanted = ParseSimdLevel(env);  // an unknown name is an error, not ignored
    if (static_cast<int>(wanted) < static_cast<int>(level)) level = wanted;
  }
  return level;
}

SimdLevel ActiveLevel() {
  static const SimdLevel level = ComputeActiveLevel();
  return level;
}

std::vector<SimdLevel> SupportedLevels() {
  std::vector<SimdLevel> levels;
  for (int i = 0; i <= static_cast<int>(MaxSupportedLevel()); ++i)
    levels.push_back(static_cast<SimdLevel>(i));
  return levels;
}

Bf16Variant ParseBf16Variant(const std::string& name) {
  if (name.empty() || name == "auto") return Bf16Variant::kAuto;
  if (name == "native") return Bf16Variant::kNative;
  if (name == "widened") return Bf16Variant::kWidened;
  if (name == "amx") return Bf16Variant::kAmx;
  throw std::invalid_argument("bf16 variant must be 'auto', 'native', 'widened' or 'amx', got '" + name + "'");
}

static bool IsAmd() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

static void RequireSupported(SimdLevel level) {
  if (static_cast<int>(level) > static_cast<int>(MaxSupportedLevel()))
    throw std::invalid_argument(std::string("SIMD level ") + SimdLevelName(level) +
                                " is not supported by this CPU");
}

const DenseKernels& DenseKernelsFor(SimdLevel level, Bf16Variant bf16) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return DenseKernelsScalar();
    case SimdLevel::kAvx2: return DenseKernelsAvx2();
    case SimdLevel::kAvx512: return DenseKernelsAvx512();
    case SimdLevel::kAvx512Bf16:
      if (bf16 == Bf16Variant::kAmx) {
        if (!AmxUsable()) throw std::invalid_argument("bf16 variant 'amx' needs AMX-BF16, which this CPU or OS lacks");
        return DenseKernelsAmx();
      }
      if (bf16 == Bf16Variant::kAuto && AmxUsable()) return DenseKernelsAmx();
      return DenseKernelsAvx512Bf16(bf16 == Bf16Variant::kNative || (bf16 == Bf16Variant::kAuto && IsAmd()));
  }
  throw std::invalid_argument("bad SIMD level");
}

Lut16BuildFn Lut16BuildFor(SimdLevel level) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return &Lut16BuildScalar;
    case SimdLevel::kAvx2: return &Lut16BuildAvx2;
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &Lut16BuildAvx512;
  }
  return &Lut16BuildScalar;
}

Lut16ScanFn Lut16KernelFor(SimdLevel level) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return &Lut16ScanScalar;
    case SimdLevel::kAvx2: return &Lut16ScanAvx2;
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &Lut16ScanAvx512;
  }
  return &Lut16ScanScalar;
}

Lut16ScanMultiFn Lut16MultiKernelFor(SimdLevel level) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return &Lut16ScanMultiScalar;
    case SimdLevel::kAvx2: return &Lut16ScanMultiAvx2;
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &Lut16ScanMultiAvx512;
  }
  return &Lut16ScanMultiScalar;
}

MaxSimFn MaxSimKernelFor(SimdLevel level) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return &MaxSimScalar;
    case SimdLevel::kAvx2: return &MaxSimAvx2;
    case SimdLevel::kAvx512:
    case SimdLevel::kAvx512Bf16: return &MaxSimAvx512;
  }
  return &MaxSimScalar;
}

}  // namespace annlib
