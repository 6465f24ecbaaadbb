#include "dispatch.h"

#include <cstdlib>
#include <stdexcept>

#include "arch.h"

#if defined(ANNLIB_ARCH_X86_64) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(ANNLIB_ARCH_X86_64) && defined(_MSC_VER)
#include <intrin.h>
#endif
#if defined(ANNLIB_NEON_DOTPROD_UNIT) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(ANNLIB_NEON_DOTPROD_UNIT) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace annlib {

namespace {

// The levels of this build's architecture, lowest first.
std::vector<SimdLevel> ArchLevels() {
#if defined(ANNLIB_ARCH_X86_64)
  return {SimdLevel::kScalar, SimdLevel::kAvx2,       SimdLevel::kAvx2Vnni,
          SimdLevel::kAvx512, SimdLevel::kAvx512Vnni, SimdLevel::kAvx512Bf16};
#elif defined(ANNLIB_NEON_DOTPROD_UNIT)
  return {SimdLevel::kScalar, SimdLevel::kNeon, SimdLevel::kNeonDotprod};
#elif defined(ANNLIB_ARCH_ARM64)
  return {SimdLevel::kScalar, SimdLevel::kNeon};
#else
  return {SimdLevel::kScalar};
#endif
}

int Rank(SimdLevel level) {
  const std::vector<SimdLevel> levels = ArchLevels();
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i] == level) return static_cast<int>(i);
  return -1;
}

#if defined(ANNLIB_ARCH_X86_64)
struct CpuFeatures {
  bool avx2 = false, avx_vnni = false, avx512 = false, avx512_vnni = false, avx512_bf16 = false, amx_bf16 = false;
  bool amd = false;
  bool avx512_vbmi_vnni = false;  // byte permutes and dot products (the LUT16 scan)
};

#if defined(_MSC_VER)
void Cpuid(int leaf, int sub, unsigned out[4]) {
  int r[4];
  __cpuidex(r, leaf, sub);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned>(r[i]);
}
unsigned long long Xgetbv() { return _xgetbv(0); }
#else
void Cpuid(int leaf, int sub, unsigned out[4]) {
  __asm__("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(sub));
}
unsigned long long Xgetbv() {
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

// CPUID feature bits and the OS's consent (XCR0) to save the wider registers.
CpuFeatures DetectFeatures() {
  CpuFeatures f;
  unsigned r[4];
  Cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  f.amd = r[1] == 0x68747541u;  // "Auth"enticAMD
  Cpuid(1, 0, r);
  const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1;
  if (!osxsave || !avx || max_leaf < 7) return f;
  const unsigned long long xcr0 = Xgetbv();
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6;
  unsigned l7[4], l7_1[4] = {0, 0, 0, 0};
  Cpuid(7, 0, l7);
  if (l7[0] >= 1) Cpuid(7, 1, l7_1);  // sub-leaf 1 exists
  const unsigned ebx = l7[1], ecx = l7[2], edx = l7[3];
  f.avx2 = ymm && fma && f16c && ((ebx >> 5) & 1);
  f.avx_vnni = f.avx2 && ((l7_1[0] >> 4) & 1);  // leaf 7 sub-leaf 1 eax bit 4
  // avx512f, avx512dq, avx512bw, avx512vl
  f.avx512 = f.avx2 && zmm && ((ebx >> 16) & 1) && ((ebx >> 17) & 1) && ((ebx >> 30) & 1) && ((ebx >> 31) & 1);
  // avx512_vnni (leaf 7 ecx bit 11), avx512_bf16 (leaf 7 sub-leaf 1 eax bit 5)
  f.avx512_vnni = f.avx512 && ((ecx >> 11) & 1);
  f.avx512_bf16 = f.avx512_vnni && ((l7_1[0] >> 5) & 1);
  f.avx512_vbmi_vnni = f.avx512_vnni && ((ecx >> 1) & 1);  // and avx512_vbmi (leaf 7 ecx bit 1)
  f.amx_bf16 = ((edx >> 24) & 1) && ((edx >> 22) & 1);  // amx-tile, amx-bf16
  return f;
}

const CpuFeatures& Features() {
  static const CpuFeatures features = DetectFeatures();
  return features;
}
#endif

}  // namespace

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx2Vnni: return "avx2_vnni";
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx512Vnni: return "avx512_vnni";
    case SimdLevel::kAvx512Bf16: return "avx512_bf16";
    case SimdLevel::kNeon: return "neon";
    case SimdLevel::kNeonDotprod: return "neon_dotprod";
  }
  return "unknown";
}

SimdLevel ParseSimdLevel(const std::string& name) {
  std::string known;
  for (SimdLevel level : ArchLevels()) {
    if (name == SimdLevelName(level)) return level;
    known += (known.empty() ? "" : ", ") + std::string(SimdLevelName(level));
  }
  throw std::invalid_argument("unknown SIMD level '" + name + "': this build's levels are " + known);
}

#if defined(ANNLIB_NEON_DOTPROD_UNIT)
// Armv8.2's dot product instructions (FEAT_DotProd), as the OS reports them.
static bool NeonDotprod() {
#if defined(__linux__)
  constexpr unsigned long kHwcapAsimddp = 1ul << 20;  // HWCAP_ASIMDDP
  return (getauxval(AT_HWCAP) & kHwcapAsimddp) != 0;
#elif defined(__APPLE__)
  int has = 0;
  size_t size = sizeof has;
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &size, nullptr, 0) == 0 && has != 0;
#else
  return false;  // not detected elsewhere: the neon level
#endif
}
#endif

// Whether this CPU and OS can run a level of this build's architecture.
static bool CpuRuns(SimdLevel level) {
#if defined(ANNLIB_ARCH_X86_64)
  const CpuFeatures& f = Features();
  switch (level) {
    case SimdLevel::kScalar: return true;
    case SimdLevel::kAvx2: return f.avx2;
    case SimdLevel::kAvx2Vnni: return f.avx_vnni;
    case SimdLevel::kAvx512: return f.avx512;
    case SimdLevel::kAvx512Vnni: return f.avx512_vnni;
    case SimdLevel::kAvx512Bf16: return f.avx512_bf16;
    default: return false;
  }
#elif defined(ANNLIB_ARCH_ARM64)
  switch (level) {
    case SimdLevel::kScalar:
    case SimdLevel::kNeon: return true;  // Advanced SIMD is part of every AArch64 CPU
#if defined(ANNLIB_NEON_DOTPROD_UNIT)
    case SimdLevel::kNeonDotprod: {
      static const bool has = NeonDotprod();
      return has;
    }
#endif
    default: return false;
  }
#else
  return level == SimdLevel::kScalar;
#endif
}

std::vector<SimdLevel> SupportedLevels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel level : ArchLevels())
    if (CpuRuns(level)) levels.push_back(level);
  return levels;
}

SimdLevel MaxSupportedLevel() { return SupportedLevels().back(); }

static SimdLevel ComputeActiveLevel() {
  const std::vector<SimdLevel> supported = SupportedLevels();  // lowest first
  const char* env = std::getenv("ANNLIB_SIMD_LEVEL");
  if (env == nullptr || env[0] == '\0') return supported.back();
  const int wanted = Rank(ParseSimdLevel(env));  // an unknown name is an error, not ignored
  SimdLevel level = supported.front();
  for (SimdLevel s : supported)
    if (Rank(s) <= wanted) level = s;
  return level;
}

SimdLevel ActiveLevel() {
  static const SimdLevel level = ComputeActiveLevel();
  return level;
}

Bf16Variant ParseBf16Variant(const std::string& name) {
  if (name.empty() || name == "auto") return Bf16Variant::kAuto;
  if (name == "native") return Bf16Variant::kNative;
  if (name == "widened") return Bf16Variant::kWidened;
  if (name == "amx") return Bf16Variant::kAmx;
  throw std::invalid_argument("bf16 variant must be 'auto', 'native', 'widened' or 'amx', got '" + name + "'");
}

bool AmxUsable() {
  static const bool usable = [] {
    const char* off = std::getenv("ANNLIB_DISABLE_AMX");
    if (off != nullptr && off[0] != '\0' && std::string(off) != "0") return false;
#if defined(ANNLIB_ARCH_X86_64) && defined(__linux__)
    if (!Features().amx_bf16 || !Features().avx512_bf16) return false;
    // Linux hands out the tile state only on request (once per process).
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;  // tile state is only requested (and the AMX path only tested) on Linux
#endif
  }();
  return usable;
}

static void RequireSupported(SimdLevel level) {
  if (!CpuRuns(level))
    throw std::invalid_argument(std::string("SIMD level ") + SimdLevelName(level) +
                                " is not supported by this CPU");
}

const DenseKernels& DenseKernelsFor(SimdLevel level, Bf16Variant bf16) {
  RequireSupported(level);
  switch (level) {
    case SimdLevel::kScalar: return DenseKernelsScalar();
#if defined(ANNLIB_ARCH_X86_64)
    case SimdLevel::kAvx2: return DenseKernelsAvx2();
    case SimdLevel::kAvx2Vnni: return DenseKernelsAvx2Vnni();
    case SimdLevel::kAvx512: return DenseKernelsAvx512();
    case SimdLevel::kAvx512Vnni: return DenseKernelsAvx512Vnni();
    case SimdLevel::kAvx512Bf16:
      if (bf16 == Bf16Variant::kAmx) {
        if (!AmxUsable()) throw std::invalid_argument("bf16 variant 'amx' needs AMX-BF16, which this CPU or OS lacks");
        return DenseKernelsAmx();
      }
      if (bf16 == Bf16Variant::kAuto && AmxUsable()) return DenseKernelsAmx();
      return DenseKernelsAvx512Bf16(bf16 == Bf16Variant::kNative || (bf16 == Bf16Variant::kAuto && Features().amd));
#endif
#if defined(ANNLIB_ARCH_ARM64)
    case SimdLevel::kNeon: return DenseKernelsNeon();
#endif
#if defined(ANNLIB_NEON_DOTPROD_UNIT)
    case SimdLevel::kNeonDotprod: return DenseKernelsNeonDotprod();
#endif
    default: break;
  }
  throw std::invalid_argument("bad SIMD level");
}

// The other kernel tables: one entry per level (avx2_vnni uses the AVX2 kernels, the avx512_vnni
// and avx512_bf16 levels the AVX-512 ones, neon_dotprod the NEON ones: their instructions do not
// serve these kernels).
#if defined(ANNLIB_ARCH_X86_64)
#define ANNLIB_PICK(scalar, neon, avx2, avx512)                    \
  switch (level) {                                               \
    case SimdLevel::kAvx2:                                       \
    case SimdLevel::kAvx2Vnni: return &avx2;                     \
    case SimdLevel::kAvx512:                                     \
    case SimdLevel::kAvx512Vnni:                                 \
    case SimdLevel::kAvx512Bf16: return &avx512;                 \
    default: return &scalar;                                     \
  }
#elif defined(ANNLIB_ARCH_ARM64)
#define ANNLIB_PICK(scalar, neon, avx2, avx512) \
  return level == SimdLevel::kNeon || level == SimdLevel::kNeonDotprod ? &neon : &scalar;
#else
#define ANNLIB_PICK(scalar, neon, avx2, avx512) return &scalar;
#endif

Lut16BuildFn Lut16BuildFor(SimdLevel level) {
  RequireSupported(level);
  ANNLIB_PICK(Lut16BuildScalar, Lut16BuildNeon, Lut16BuildAvx2, Lut16BuildAvx512)
}

// At the avx512_vnni and avx512_bf16 levels the LUT16 scans use VBMI and VNNI
// where the CPU has both (Ice Lake, Sapphire Rapids, Zen 4; not Cascade Lake or
// Cooper Lake); same results, fewer instructions.
#if defined(ANNLIB_ARCH_X86_64)
static bool Lut16VbmiFor(SimdLevel level) {
  return (level == SimdLevel::kAvx512Vnni || level == SimdLevel::kAvx512Bf16) && Features().avx512_vbmi_vnni;
}
#endif

Lut16ScanFn Lut16KernelFor(SimdLevel level) {
  RequireSupported(level);
#if defined(ANNLIB_ARCH_X86_64)
  if (Lut16VbmiFor(level)) return &Lut16ScanAvx512Vbmi;
#endif
  ANNLIB_PICK(Lut16ScanScalar, Lut16ScanNeon, Lut16ScanAvx2, Lut16ScanAvx512)
}

Lut16ScanMultiFn Lut16MultiKernelFor(SimdLevel level) {
  RequireSupported(level);
#if defined(ANNLIB_ARCH_X86_64)
  if (Lut16VbmiFor(level)) return &Lut16ScanMultiAvx512Vbmi;
#endif
  ANNLIB_PICK(Lut16ScanMultiScalar, Lut16ScanMultiNeon, Lut16ScanMultiAvx2, Lut16ScanMultiAvx512)
}

MaxSimFn MaxSimKernelFor(SimdLevel level) {
  RequireSupported(level);
  ANNLIB_PICK(MaxSimScalar, MaxSimNeon, MaxSimAvx2, MaxSimAvx512)
}

#undef ANNLIB_PICK

}  // namespace annlib
