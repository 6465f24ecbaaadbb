// AVX-512 + VNNI + BF16 dense scan kernels (Zen 4, Sapphire Rapids and later):
// int8 dots with vpdpbusd and bfloat16 dots with vdpbf16ps, two to four times
// the multiply-adds per instruction of the float32 path.
#include <immintrin.h>

#include "dense_scan.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#define ANNLIB_AVX512_VNNI 1

namespace annlib {
namespace isa_avx512_bf16 {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"

namespace {

// bfloat16 database and bfloat16-rounded query, multiplied pairwise by
// vdpbf16ps into float32 accumulators.
struct TileBf16Native {
  static constexpr int kPerGroup = 2;
  static int64_t QueryGroupBytes(int dim) { return DimGroups(dim, 2) * kMR * sizeof(uint32_t); }
  static uint32_t RoundToBf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  }
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    uint32_t* out = static_cast<uint32_t*>(dst);
    const int64_t groups = DimGroups(dim, 2);
    for (int64_t t = 0; t < groups; ++t)
      for (int i = 0; i < kMR; ++i) {
        uint32_t word = 0;
        for (int h = 0; h < 2; ++h) {
          const int64_t dd = 2 * t + h;
          if (i < m && dd < dim) word |= RoundToBf16(q[int64_t{i} * dim + dd]) << (16 * h);
        }
        out[t * kMR + i] = word;
      }
  }
  template <int M>
  static void Tile(const uint8_t* panel, int lane_off, const void* qpack, int dim, const float*,
                   int64_t, const ScanArgs&, float* out) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(panel) + 2 * lane_off;
    const int32_t* q = static_cast<const int32_t*>(qpack);
    const int64_t groups = DimGroups(dim, 2);
    __m512 acc[M][kVecsPerTile];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = _mm512_setzero_ps();
    for (int64_t t = 0; t < groups; ++t) {
      __m512bh xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v)
        xv[v] = (__m512bh)_mm512_loadu_si512(x + t * 2 * kPanelWidth + v * 2 * Ops::W);
      for (int i = 0; i < M; ++i) {
        __m512bh qi = (__m512bh)_mm512_set1_epi32(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], qi, xv[v]);
      }
    }
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) _mm512_storeu_ps(out + i * kTileWidth + v * Ops::W, acc[i][v]);
  }
};

}  // namespace
}  // namespace isa_avx512_bf16

const DenseKernels& DenseKernelsAvx512Bf16() {
  static const DenseKernels table{"avx512_bf16",
                                  {&isa_avx512_bf16::Scan<isa_avx512_bf16::TileF32>,
                                   &isa_avx512_bf16::Scan<isa_avx512_bf16::TileBf16Native>,
                                   &isa_avx512_bf16::Scan<isa_avx512_bf16::TileInt8>}};
  return table;
}

}  // namespace annlib
