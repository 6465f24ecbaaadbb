// Dense scans on AMX tiles (Intel Sapphire Rapids and later) for bfloat16 and
// int8 panels: one tdpbf16ps multiplies 16 queries by 16 points over 32
// dimensions (tdpbusd: 64 int8 dimensions), about thirteen times the
// multiply-adds per cycle of float32 FMA for bf16 (measured 1,459 against 114
// GMAC/s on one core), where vdpbf16ps runs at half the FMA rate.
//
// The bf16 and int8 panel layouts (128-byte rows of 32 points x 4 bytes) are
// already the B operand's VNNI packing: 16 rows of a panel are two B tiles,
// points 0-15 and 16-31, with a 128-byte stride. Queries are packed row-major
// (the A operand): bf16-rounded, or the int8 kernel's own affine codes. Each
// panel's 32 x 32 scores go through the vector kernels' Finish and selection
// epilogue, so filters, binned mode and the tie order behave identically.
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
namespace isa_amx {
namespace {
#include "ops_avx512-inl.h"
}  // namespace

#include "dense_scan-inl.h"
#include "rescore-inl.h"
#include "row_select-inl.h"
#include "ah_encode-inl.h"

namespace {

constexpr int kQueriesPerPass = 32;  // two A tiles
constexpr int kRowsPerStep = 16;     // panel rows per K step (64 bytes of each point)
constexpr int kStepBytes = 64;       // bytes of one query per K step
// A pass costs the same for 1 or 32 queries; below this many, the vector
// kernels are cheaper (one bf16 query: 700 vs 580 QPS on SIFT).
constexpr int kMinQueries = 4;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (queries 0-15 / 16-31 x points 0-15 / 16-31); 4-5: A; 6-7: B.
void ConfigureTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// bfloat16: queries rounded to bf16, pairs of dimensions per 4-byte lane.
struct AmxBf16 {
  using Vector = TileBf16;  // the widening kernel, for small calls
  static constexpr bool kStaged = false;
  static constexpr int kParts = 1;
  static constexpr int kDimsPerRow = 2;
  static constexpr int kQueryParams = 0;
  // Query i's dimensions as bf16 at dst + i * stride bytes (zeroed beforehand).
  static void Pack(const ScanArgs& a, uint8_t* dst, int64_t stride, float*) {
    for (int i = 0; i < a.num_queries; ++i) {
      uint16_t* row = reinterpret_cast<uint16_t*>(dst + i * stride);
      for (int t = 0; t < a.dim; ++t) row[t] = RoundToBf16(a.queries[int64_t{i} * a.dim + t]);
    }
  }
  // C tiles 0-3 += A tiles 4-5 x B tiles 6-7 (the intrinsics take literal tile numbers).
  static void Dot() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
};

// float32 panels screened on bf16 tiles (binned mode only), in three bf16
// products: with x = x_hi + x_lo and q = q_hi + q_lo split into bf16 parts,
// <q, x> ~= <q_hi, x_hi> + <q_hi, x_lo> + <q_lo, x_hi>, about 2^-16 relative
// error where plain bf16 has 2^-8 (too coarse when |q||x| dwarfs the score
// gaps, as squared L2 on clustered data shows). Each panel is split into a
// staging buffer once per query block: the hi rows for `steps` K steps, then
// the lo rows. The scores only pick each bin's winner; the caller rescores
// the winners exactly.
struct AmxF32Screen : AmxBf16 {
  using Vector = TileF32;  // small calls: exact float32 scores
  static constexpr bool kStaged = true;
  static constexpr int kParts = 2;  // hi and lo, for queries and staged panels
  static int64_t SourcePanelBytes(int dim) { return int64_t{dim} * kRowBytes; }
  // Query i: hi dimensions at dst + i * stride, lo dimensions at half the stride.
  static void Pack(const ScanArgs& a, uint8_t* dst, int64_t stride, float*) {
    for (int i = 0; i < a.num_queries; ++i) {
      uint16_t* hi = reinterpret_cast<uint16_t*>(dst + i * stride);
      uint16_t* lo = reinterpret_cast<uint16_t*>(dst + i * stride + stride / 2);
      for (int t = 0; t < a.dim; ++t) {
        const float v = a.queries[int64_t{i} * a.dim + t];
        hi[t] = RoundToBf16(v);
        lo[t] = RoundToBf16(v - Bf16ToFloat(hi[t]));
      }
    }
  }
  // Rows 2t and 2t+1 of the float32 panel become row t of a bf16 panel (point
  // l's pair at bytes 4l..4l+3): the hi parts in rows [0, staged_rows), the lo
  // parts in the next staged_rows rows.
  static void Stage(const uint8_t* panel, int dim, int64_t staged_rows, uint8_t* out) {
    alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                                             6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27,
                                                             12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_load_si512(kInterleave);
    const float* x = reinterpret_cast<const float*>(panel);
    uint8_t* out_lo = out + staged_rows * kRowBytes;
    for (int64_t t = 0; t < staged_rows; ++t)
      for (int h = 0; h < 2; ++h) {  // points 0-15, then 16-31
        const int64_t even = 2 * t, odd = 2 * t + 1;
        const __m512 ev = even < dim ? _mm512_loadu_ps(x + even * kPanelWidth + 16 * h) : _mm512_setzero_ps();
        const __m512 od = odd < dim ? _mm512_loadu_ps(x + odd * kPanelWidth + 16 * h) : _mm512_setzero_ps();
        // Words 0-15: the even dimension of the 16 points; 16-31: the odd one.
        const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(od, ev);
        const __m512 ev_lo = _mm512_sub_ps(ev, Widen(_mm512_castsi512_si256(hi)));
        const __m512 od_lo = _mm512_sub_ps(od, Widen(_mm512_extracti64x4_epi64(hi, 1)));
        const __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(od_lo, ev_lo);
        _mm512_store_si512(out + t * kRowBytes + 64 * h, _mm512_permutexvar_epi16(interleave, hi));
        _mm512_store_si512(out_lo + t * kRowBytes + 64 * h, _mm512_permutexvar_epi16(interleave, lo));
      }
  }

 private:
  static float Bf16ToFloat(uint16_t b) {
    const uint32_t u = uint32_t{b} << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  // 16 bf16 values as float32 (exact: a shift into the high half).
  static __m512 Widen(__m256i words) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(words), 16));
  }
};

// int8: the vector kernel's affine query codes (+128, unsigned, as vpdpbusd
// takes them), quads of dimensions per lane; int32 sums exact, so scores are
// bit-identical to the vector kernel's once TileInt8::Finish has run.
struct AmxInt8 {
  using Vector = TileInt8;
  static constexpr bool kStaged = false;
  static constexpr int kParts = 1;
  static constexpr int kDimsPerRow = 4;
  static constexpr int kQueryParams = TileInt8::kQueryParams;
  static void Pack(const ScanArgs& a, uint8_t* dst, int64_t stride, float* params) {
    const int64_t rows = DimGroups(a.dim, 4);
    int32_t* packed = static_cast<int32_t*>(std::malloc(rows * kMR * 4));  // [rows][kMR], one group
    if (packed == nullptr) throw std::bad_alloc();
    for (int g = 0; g * kMR < a.num_queries; ++g) {
      const int m = a.num_queries - g * kMR < kMR ? a.num_queries - g * kMR : kMR;
      TileInt8::PackQueries(a.queries + int64_t{g} * kMR * a.dim, m, a.dim, packed, params + g * kMR * kQueryParams);
      for (int i = 0; i < m; ++i) {
        int32_t* row = reinterpret_cast<int32_t*>(dst + (g * kMR + i) * stride);
        for (int64_t t = 0; t < rows; ++t) row[t] = packed[t * kMR + i];
      }
    }
    std::free(packed);
  }
  static void Dot() {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
};

// C tiles 0-3 += 32 queries' K step at q (rows query_stride apart) x the two
// B tiles of 16 panel rows at b.
template <class P>
inline void Multiply(const uint8_t* q, int64_t query_stride, const uint8_t* b) {
  _tile_loadd(6, b, kRowBytes);
  _tile_loadd(7, b + kRowBytes / 2, kRowBytes);
  _tile_loadd(4, q, query_stride);
  _tile_loadd(5, q + 16 * query_stride, query_stride);
  P::Dot();
}

template <class P>
void ScanAmx(const ScanArgs& a) {
  const int nq = a.num_queries;
  if (nq <= 0 || a.panel_begin >= a.panel_end) return;
  if (nq < kMinQueries) return Scan<typename P::Vector>(a);
  const int64_t rows = DimGroups(a.dim, P::kDimsPerRow);
  const int64_t steps = (rows + kRowsPerStep - 1) / kRowsPerStep;
  const int64_t query_stride = P::kParts * steps * kStepBytes;
  const int passes = (nq + kQueriesPerPass - 1) / kQueriesPerPass;
  const int64_t query_bytes = int64_t{passes} * kQueriesPerPass * query_stride;
  // Staging: a zero-padded copy of a partial last K step, so no load reads past
  // the panel; for staged (converted) panels, the whole panel in `steps` K steps.
  const int64_t staging_bytes = (P::kStaged ? P::kParts * steps : 1) * kRowsPerStep * kRowBytes;
  const int64_t out_bytes = int64_t{kQueriesPerPass} * kPanelWidth * 4;
  const int64_t float_bytes = (int64_t{passes} * kQueriesPerPass * (P::kQueryParams + 1) * 4 + 63) / 64 * 64;
  uint8_t* scratch = static_cast<uint8_t*>(AlignedAlloc64(query_bytes + staging_bytes + out_bytes + float_bytes));
  if (scratch == nullptr) throw std::bad_alloc();
  uint8_t* qpack = scratch;
  uint8_t* staging = scratch + query_bytes;
  float* out = reinterpret_cast<float*>(staging + staging_bytes);
  float* thresholds = reinterpret_cast<float*>(staging + staging_bytes + out_bytes);
  float* params = thresholds + passes * kQueriesPerPass;

  // Padding queries and dimensions meet zero panel rows or zero queries: they add nothing.
  std::memset(qpack, 0, query_bytes);
  P::Pack(a, qpack, query_stride, params);
  if (a.raw_scores == nullptr && a.num_bins == 0)
    for (int i = 0; i < nq; ++i) thresholds[i] = HeapThreshold(a.states[i], a.k);

  const uint8_t* panels = static_cast<const uint8_t*>(a.panels);
  int64_t panel_bytes = rows * kRowBytes, full_steps = rows / kRowsPerStep;
  if constexpr (P::kStaged) {
    panel_bytes = P::SourcePanelBytes(a.dim);
    full_steps = 0;
  }
  const int64_t tail_rows = rows - full_steps * kRowsPerStep;
  std::memset(staging, 0, staging_bytes);
  ConfigureTiles();
  for (int64_t p = a.panel_begin; p < a.panel_end; ++p) {
    const uint8_t* panel = panels + p * panel_bytes;
    if constexpr (P::kStaged)
      P::Stage(panel, a.dim, steps * kRowsPerStep, staging);
    else if (tail_rows > 0)  // never read past the panel
      std::memcpy(staging, panel + full_steps * kRowsPerStep * kRowBytes, tail_rows * kRowBytes);
    const int64_t j0 = p * kPanelWidth;
    for (int pass = 0; pass < passes; ++pass) {
      const int q0 = pass * kQueriesPerPass;
      const int m = nq - q0 < kQueriesPerPass ? nq - q0 : kQueriesPerPass;
      const uint8_t* qa = qpack + int64_t{q0} * query_stride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t s = 0; s < steps; ++s) {
        const uint8_t* b = s < full_steps ? panel + s * kRowsPerStep * kRowBytes
                                          : staging + (s - full_steps) * kRowsPerStep * kRowBytes;
        const uint8_t* q = qa + s * kStepBytes;
        Multiply<P>(q, query_stride, b);
        if constexpr (P::kParts == 2) {  // the hi x lo and lo x hi products
          Multiply<P>(q, query_stride, b + steps * kRowsPerStep * kRowBytes);
          Multiply<P>(q + steps * kStepBytes, query_stride, b);
        }
      }
      constexpr int kOutStride = kPanelWidth * 4;  // bytes per query row of `out`
      _tile_stored(0, out, kOutStride);
      _tile_stored(1, out + 16, kOutStride);
      _tile_stored(2, out + 16 * kPanelWidth, kOutStride);
      _tile_stored(3, out + 16 * kPanelWidth + 16, kOutStride);
      P::Vector::Finish(m, out, params + int64_t{q0} * P::kQueryParams, j0, a);
      if (a.raw_scores != nullptr)
        StoreRaw(out, m, j0, a.bias + j0, a.raw_scores + int64_t{q0} * a.raw_stride, a.raw_stride);
      else
        Epilogue(out, m, j0, a.bias + j0, a.states + q0, a, thresholds + q0);
    }
  }
  _tile_release();
  AlignedFree(scratch);
}

}  // namespace
}  // namespace isa_amx

const DenseKernels& DenseKernelsAmx() {
  using namespace isa_amx;
  // Binned float32 screens with the int8 copy on the int8 tiles (int8_screen, the last field) where its check
  // passes. Else the staged screen: three bf16 products, about 3 * 2^-16 relative error (4 for margin);
  // converting each panel loses to the float32 kernel below 64 queries per block (SIFT 0.85x / 1.02x / 1.33x
  // exact with 16 / 32 / 64 queries per block, words 0.84x / 1.19x / 1.44x; 2 threads).
  static const DenseKernels kernels{"avx512_bf16", {&Scan<TileF32>, &ScanAmx<AmxBf16>, &ScanAmx<AmxInt8>}, &Rescore,
                                    {&AtMost, &Smallest, &LaneMaxima, &AtLeast}, &AhEncodePoint,
                                    &ScanAmx<AmxF32Screen>, 4.0 / 65536, 64, false, &ScorePointsF32, true};
  return kernels;
}

}  // namespace annlib
