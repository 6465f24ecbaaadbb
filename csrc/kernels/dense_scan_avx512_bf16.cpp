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
#include <new>

#define ANNLIB_AVX512_VNNI 1

namespace annlib {
namespace isa_avx512_bf16 {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"

namespace {

// bfloat16 database and bfloat16-rounded query, multiplied pairwise by
// vdpbf16ps into float32 accumulators.
struct TileBf16Native {
  static constexpr int kDimsPerRow = 2;
  static constexpr int kQueryRowBytes = 4;
  static constexpr int kQueryParams = 0;
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    uint32_t* out = static_cast<uint32_t*>(dst);
    const int64_t rows = DimGroups(dim, 2);
    for (int64_t t = 0; t < rows; ++t)
      for (int i = 0; i < kMR; ++i) {
        uint32_t word = 0;
        for (int h = 0; h < 2; ++h) {
          const int64_t dd = 2 * t + h;
          if (i < m && dd < dim) word |= uint32_t{RoundToBf16(q[int64_t{i} * dim + dd])} << (16 * h);
        }
        out[t * kMR + i] = word;
      }
  }
  template <int M>
  static void Tile(const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows, int64_t nrows,
                   bool first, void* acc_buf) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(panel_rows) + 2 * lane_off;
    const int32_t* q = reinterpret_cast<const int32_t*>(query_rows);
    __m512 acc[M][kVecsPerTile];
    LoadOrZero<M>(acc, acc_buf, first, Ops::zero);
    for (int64_t t = 0; t < nrows; ++t) {
      __m512bh xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v)
        xv[v] = (__m512bh)_mm512_loadu_si512(x + t * 2 * kPanelWidth + v * 2 * Ops::W);
      for (int i = 0; i < M; ++i) {
        __m512bh qi = (__m512bh)_mm512_set1_epi32(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], qi, xv[v]);
      }
    }
    StoreAcc<M>(acc, acc_buf);
  }
  static void Finish(int, void*, const float*, int64_t, const ScanArgs&) {}
};

}  // namespace
}  // namespace isa_avx512_bf16

const DenseKernels& DenseKernelsAvx512Bf16(bool native_bf16) {
  using namespace isa_avx512_bf16;
  static const DenseKernels native{"avx512_bf16", {&Scan<TileF32>, &Scan<TileBf16Native>, &Scan<TileInt8>}, &Rescore};
  static const DenseKernels widened{"avx512_bf16", {&Scan<TileF32>, &Scan<TileBf16>, &Scan<TileInt8>}, &Rescore};
  return native_bf16 ? native : widened;
}

}  // namespace annlib
