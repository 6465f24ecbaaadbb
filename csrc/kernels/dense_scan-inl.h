// Body of the dense scan kernels, included once by each ISA translation unit
// (dense_scan_<isa>.cpp) after it has defined, inside its own namespace:
//
//   struct Ops {            // W float lanes of one SIMD register
//     static constexpr int W;
//     using V;  using VI;   // float / int32 vectors of W lanes
//     V zero(); V load(const float*); V set1(float); V add(V,V); V sub(V,V); V mul(V,V);
//     V fmadd(V a, V b, V c);               // a*b + c
//     void store(float*, V);
//     uint32_t gt_mask(V a, V b);           // bit l set where a[l] > b[l]
//     void store_winners(float* scores, int32_t* ids, uint32_t mask, V s, int32_t first_id);
//                                          // lanes of mask: scores[l] = s[l], ids[l] = first_id + l
//     void bf16_pair(const uint16_t* p, V& even, V& odd);  // W points' dim pair
//     VI zero_i(); VI load_i(const int32_t*); VI sub_i(VI,VI); VI shl7_i(VI);
//     VI set1_i(int32_t);   using XI;  XI load_x(const int8_t* x);  // W points x 4 dims
//     VI dot4(VI acc, VI q_quad, XI x);     // acc[l] += sum_h q[h] * x[l][h]
//     V to_float(VI);
//     static constexpr int kInt8QueryOffset;  // 0, or 128 when dot4 takes u8 queries
//   };
//   constexpr int kMR;  constexpr int kTileWidth;  (queries x points per tile)
//
// Everything here lives in the including unit's namespace, so no inline symbol
// compiled with wide-ISA flags can be merged with a baseline caller's copy.
// No STL: only raw loops and malloc.

// The including unit includes <cmath>, <cstdint>, <cstdlib>, <cstring> and
// <limits> at file scope first: standard headers must not open inside a namespace.

namespace {

using annlib::kPanelWidth;
using annlib::ScanArgs;

#include "select-inl.h"

constexpr int kVecsPerTile = kTileWidth / Ops::W;
static_assert(kTileWidth % Ops::W == 0, "tile must be whole vectors");
static_assert(kPanelWidth % kTileWidth == 0, "panel must be whole tiles");

inline int64_t DimGroups(int dim, int per_group) { return (dim + per_group - 1) / per_group; }

// A query value rounded to bfloat16 (nearest even), for the kernels that
// multiply bf16 by bf16 (vdpbf16ps, AMX tiles).
inline uint16_t RoundToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Adds the per-point bias to a tile of raw scores and feeds every survivor to
// the selection state of its query. Survivors are rare once the threshold has
// risen, so the common path is one compare per vector.
// The filter's bits for points j .. j + W - 1 (W divides 64 and j is a
// multiple of W, so they sit in one word); all ones without a filter.
inline uint32_t AllowedLanes(const ScanArgs& a, int64_t j) {
  constexpr uint64_t kLanes = Ops::W >= 32 ? ~uint64_t{0} : (uint64_t{1} << Ops::W) - 1;
  if (a.allowed == nullptr) return static_cast<uint32_t>(kLanes);
  return static_cast<uint32_t>((a.allowed[j >> 6] >> (j & 63)) & kLanes);
}

inline void Epilogue(float* out, int m, int64_t j0, const float* bias, SelectState* states,
                     const ScanArgs& a, float* thresholds) {
  typename Ops::V b[kVecsPerTile];
  uint32_t allowed[kVecsPerTile];
  for (int v = 0; v < kVecsPerTile; ++v) {
    b[v] = Ops::load(bias + v * Ops::W);
    allowed[v] = AllowedLanes(a, j0 + v * Ops::W);
  }
  if (a.num_bins == 0) {
    for (int i = 0; i < m; ++i) {
      float* row = out + i * kTileWidth;
      typename Ops::V thr = Ops::set1(thresholds[i]);
      for (int v = 0; v < kVecsPerTile; ++v) {
        typename Ops::V s = Ops::add(Ops::load(row + v * Ops::W), b[v]);
        uint32_t mask = Ops::gt_mask(s, thr) & allowed[v];
        if (mask == 0) continue;
        Ops::store(row + v * Ops::W, s);
        SelectState& st = states[i];
        while (mask != 0) {
          int lane = annlib::LowestBit32(mask);
          mask &= mask - 1;
          float score = row[v * Ops::W + lane];
          if (score > thresholds[i]) {
            HeapPush(st, a.k, score, static_cast<int32_t>(j0 + v * Ops::W + lane));
            thresholds[i] = HeapThreshold(st, a.k);
          }
        }
        thr = Ops::set1(thresholds[i]);
      }
    }
    return;
  }
  // Binned mode: point j competes only within bin j mod L (strided bins).
  const int L = a.num_bins;
  int pos[kVecsPerTile];
  int p0 = static_cast<int>(j0 % L);
  for (int v = 0; v < kVecsPerTile; ++v) {
    pos[v] = p0;
    p0 += Ops::W;
    while (p0 >= L) p0 -= L;
  }
  for (int i = 0; i < m; ++i) {
    float* row = out + i * kTileWidth;
    SelectState& st = states[i];
    for (int v = 0; v < kVecsPerTile; ++v) {
      typename Ops::V s = Ops::add(Ops::load(row + v * Ops::W), b[v]);
      // The W lanes go to W consecutive slots: a better score replaces its slot's
      // winner without a branch per lane (winners change often in binned mode).
      const uint32_t mask = Ops::gt_mask(s, Ops::load(st.scores + pos[v])) & allowed[v];
      Ops::store_winners(st.scores + pos[v], st.ids + pos[v], mask, s, static_cast<int32_t>(j0 + v * Ops::W));
    }
  }
}

// Raw mode: the tile's scores plus bias, stored for the caller.
inline void StoreRaw(const float* out, int m, int64_t j0, const float* bias, float* raw, int64_t stride) {
  for (int i = 0; i < m; ++i)
    for (int v = 0; v < kVecsPerTile; ++v)
      Ops::store(raw + i * stride + j0 + v * Ops::W,
                 Ops::add(Ops::load(out + i * kTileWidth + v * Ops::W), Ops::load(bias + v * Ops::W)));
}

// ---------------------------------------------------------------- tiles
// A tile policy knows its query packing and accumulates, for M <= kMR queries
// and kTileWidth points of one panel, the dot products over a slice of panel
// rows into acc [kMR][kTileWidth] (4-byte lanes: float, or int32 for int8).
// Finish turns accumulators into raw float scores in place. Every Tile<M>
// adds the rows of a query in the same order whatever M is, so a query's
// scores are bit-identical alone and inside a batch (a lone query splitting
// its sum into several chains measured no faster: its scan is memory-bound).
//
//   kDimsPerRow         dimensions held by one 128-byte panel row
//   kQueryRowBytes      bytes of packed query data per (row, query)
//   kQueryParams        floats of per-query parameters (quantisation)
//   kStaged             the panels are float32 and Stage(panel, dim, r0, nrows,
//                       out) converts rows [r0, r0 + nrows) of the tile's
//                       layout into out once per slice (screens, below)
//   PackQueries(q, m, dim, dst, params)   dst: [rows][kMR] elements
//   Tile<M>(panel_rows, lane_off, query_rows, nrows, first, acc)
//   Finish(m, acc, params, j0, args)

constexpr int64_t kRowBytes = kPanelWidth * 4;

template <int M, class Acc, class Zero>
inline void LoadOrZero(Acc (&acc)[M][kVecsPerTile], const void* buf, bool first, Zero zero) {
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = zero();
  if (first) return;
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < kVecsPerTile; ++v) std::memcpy(&acc[i][v], static_cast<const uint8_t*>(buf) + (i * kTileWidth + v * Ops::W) * 4, sizeof(Acc));
}

template <int M, class Acc>
inline void StoreAcc(const Acc (&acc)[M][kVecsPerTile], void* buf) {
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < kVecsPerTile; ++v) std::memcpy(static_cast<uint8_t*>(buf) + (i * kTileWidth + v * Ops::W) * 4, &acc[i][v], sizeof(Acc));
}

struct TileF32 {
  static constexpr bool kStaged = false;
  static constexpr int kDimsPerRow = 1;
  static constexpr int kQueryRowBytes = 4;
  static constexpr int kQueryParams = 0;
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    float* out = static_cast<float*>(dst);
    // Tile<M> reads only the first M <= m lanes of each row: no zero fill.
    for (int t = 0; t < dim; ++t)
      for (int i = 0; i < m; ++i) out[t * kMR + i] = q[int64_t{i} * dim + t];
  }
  template <int M>
  static void Tile(const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows, int64_t nrows,
                   bool first, void* acc_buf) {
    const float* x = reinterpret_cast<const float*>(panel_rows) + lane_off;
    const float* q = reinterpret_cast<const float*>(query_rows);
    typename Ops::V acc[M][kVecsPerTile];
    LoadOrZero<M>(acc, acc_buf, first, Ops::zero);
    for (int64_t t = 0; t < nrows; ++t) {
      typename Ops::V xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v) xv[v] = Ops::load(x + t * kPanelWidth + v * Ops::W);
      for (int i = 0; i < M; ++i) {
        typename Ops::V qi = Ops::set1(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::fmadd(qi, xv[v], acc[i][v]);
      }
    }
    StoreAcc<M>(acc, acc_buf);
  }
  static void Finish(int, void*, const float*, int64_t, const ScanArgs&) {}
};

// bfloat16 database, float32 query: each bf16 pair widens to two float vectors.
struct TileBf16 {
  static constexpr bool kStaged = false;
  static constexpr int kDimsPerRow = 2;
  static constexpr int kQueryRowBytes = 8;
  static constexpr int kQueryParams = 0;
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    float* out = static_cast<float*>(dst);
    const int64_t rows = DimGroups(dim, 2);
    for (int64_t t = 0; t < rows; ++t)
      for (int i = 0; i < kMR; ++i)
        for (int h = 0; h < 2; ++h) {
          const int64_t dd = 2 * t + h;
          out[(t * kMR + i) * 2 + h] = (i < m && dd < dim) ? q[int64_t{i} * dim + dd] : 0.0f;
        }
  }
  template <int M>
  static void Tile(const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows, int64_t nrows,
                   bool first, void* acc_buf) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(panel_rows) + 2 * lane_off;
    const float* q = reinterpret_cast<const float*>(query_rows);
    typename Ops::V acc[M][kVecsPerTile];
    LoadOrZero<M>(acc, acc_buf, first, Ops::zero);
    for (int64_t t = 0; t < nrows; ++t) {
      typename Ops::V even[kVecsPerTile], odd[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v)
        Ops::bf16_pair(x + t * 2 * kPanelWidth + v * 2 * Ops::W, even[v], odd[v]);
      for (int i = 0; i < M; ++i) {
        typename Ops::V qe = Ops::set1(q[(t * kMR + i) * 2]);
        typename Ops::V qo = Ops::set1(q[(t * kMR + i) * 2 + 1]);
        for (int v = 0; v < kVecsPerTile; ++v) {
          acc[i][v] = Ops::fmadd(qe, even[v], acc[i][v]);
          acc[i][v] = Ops::fmadd(qo, odd[v], acc[i][v]);
        }
      }
    }
    StoreAcc<M>(acc, acc_buf);
  }
  static void Finish(int, void*, const float*, int64_t, const ScanArgs&) {}
};

// int8, affine on both sides: x ~= s_x c + m_x per point, q ~= s_q u + m_q per
// query. Then <q, x> ~= s_q s_x <u, c> + m_x (s_q sum(u) + d m_q) + m_q s_x sum(c);
// the integer <u, c> is exact, the rest is applied in Finish.
struct TileInt8 {
  static constexpr bool kStaged = false;
  static constexpr int kDimsPerRow = 4;
  static constexpr int kQueryRowBytes = 4;
  static constexpr int kQueryParams = 3;  // s_q, m_q, s_q sum(u) + d m_q
  // One query at a time, in loops the compiler vectorizes; the lanes past m
  // get code 0 without the per-element work (a lone query's centroid stage
  // spent ~0.5 us here as scalar code over all kMR lanes).
  static void PackQueries(const float* q, int m, int dim, void* dst, float* params) {
    int32_t* out = static_cast<int32_t*>(dst);
    const int64_t rows = DimGroups(dim, 4);
    constexpr uint8_t kZeroCode = static_cast<uint8_t>(Ops::kInt8QueryOffset & 0xFF);  // code 0
    constexpr int32_t kZeroWord = static_cast<int32_t>(uint32_t{kZeroCode} * 0x01010101u);  // in all 4 bytes
    for (int64_t t = 0; t < rows; ++t)
      for (int i = m; i < kMR; ++i) out[t * kMR + i] = kZeroWord;
    for (int i = 0; i < m; ++i) {
      const float* x = q + int64_t{i} * dim;
      float lo, hi;
      ValueRange(x, dim, &lo, &hi);
      float mid = 0.5f * (lo + hi);
      float scale = hi > lo ? (hi - lo) / 254.0f : 1.0f;
      bool integer_valued = hi - lo <= 254.0f;
      if (integer_valued) {
        bool fraction = false;
        for (int t = 0; t < dim; ++t) fraction |= x[t] != std::nearbyint(x[t]);
        integer_valued = !fraction;
      }
      if (integer_valued) {  // exact codes for integer-valued queries, as for the data
        scale = 1.0f;
        mid = std::floor(mid);
      }
      // Codes of 256 dimensions at a time on the stack, then four per word
      // (the lowest dimension in the low byte); padding dimensions code 0.
      constexpr int kChunk = 256;
      uint8_t bytes[kChunk];
      int64_t code_sum = 0;
      for (int64_t c0 = 0; c0 < rows * 4; c0 += kChunk) {
        const int64_t n = rows * 4 - c0 < kChunk ? rows * 4 - c0 : kChunk;
        const int64_t real = dim - c0 < n ? dim - c0 : n;
        for (int64_t t = 0; t < real; ++t) {
          int code = static_cast<int>(std::nearbyint((x[c0 + t] - mid) / scale));
          code = code < -127 ? -127 : (code > 127 ? 127 : code);
          code_sum += code;
          bytes[t] = static_cast<uint8_t>((code + Ops::kInt8QueryOffset) & 0xFF);
        }
        for (int64_t t = real; t < n; ++t) bytes[t] = kZeroCode;
        for (int64_t t = 0; t < n / 4; ++t) {
          const uint32_t word = uint32_t{bytes[4 * t]} | uint32_t{bytes[4 * t + 1]} << 8 |
                                uint32_t{bytes[4 * t + 2]} << 16 | uint32_t{bytes[4 * t + 3]} << 24;
          out[(c0 / 4 + t) * kMR + i] = static_cast<int32_t>(word);
        }
      }
      params[3 * i] = scale;
      params[3 * i + 1] = mid;
      params[3 * i + 2] = static_cast<float>(scale * static_cast<double>(code_sum) + static_cast<double>(dim) * mid);
    }
  }
  // Smallest and largest of x[0, n), n > 0, in eight running lanes (one
  // chain would wait on each compare). Plain compares: queries are finite
  // (checked on entry), and std::fmin / fmax are libm calls.
  static void ValueRange(const float* x, int n, float* lo_out, float* hi_out) {
    float lo[8], hi[8];
    for (int j = 0; j < 8; ++j) lo[j] = hi[j] = x[0];
    int t = 0;
    for (; t + 8 <= n; t += 8)
      for (int j = 0; j < 8; ++j) {
        lo[j] = x[t + j] < lo[j] ? x[t + j] : lo[j];
        hi[j] = x[t + j] > hi[j] ? x[t + j] : hi[j];
      }
    for (; t < n; ++t) {
      lo[0] = x[t] < lo[0] ? x[t] : lo[0];
      hi[0] = x[t] > hi[0] ? x[t] : hi[0];
    }
    for (int j = 1; j < 8; ++j) {
      lo[0] = lo[j] < lo[0] ? lo[j] : lo[0];
      hi[0] = hi[j] > hi[0] ? hi[j] : hi[0];
    }
    *lo_out = lo[0];
    *hi_out = hi[0];
  }
  template <int M>
  static void Tile(const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows, int64_t nrows,
                   bool first, void* acc_buf) {
    const int8_t* x = reinterpret_cast<const int8_t*>(panel_rows) + 4 * lane_off;
    const int32_t* q = reinterpret_cast<const int32_t*>(query_rows);
    typename Ops::VI acc[M][kVecsPerTile];
    LoadOrZero<M>(acc, acc_buf, first, Ops::zero_i);
    for (int64_t t = 0; t < nrows; ++t) {
      typename Ops::XI xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v) xv[v] = Ops::load_x(x + t * 4 * kPanelWidth + v * 4 * Ops::W);
      for (int i = 0; i < M; ++i) {
        typename Ops::VI qi = Ops::set1_i(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::dot4(acc[i][v], qi, xv[v]);
      }
    }
    StoreAcc<M>(acc, acc_buf);
  }
  static void Finish(int m, void* acc_buf, const float* params, int64_t j0, const ScanArgs& a) {
    uint8_t* buf = static_cast<uint8_t*>(acc_buf);
    for (int v = 0; v < kVecsPerTile; ++v) {
      const int64_t j = j0 + v * Ops::W;
      const typename Ops::V scale = Ops::load(a.scale + j);
      const typename Ops::V offset = Ops::load(a.offset + j);
      const typename Ops::V scaled_sum = Ops::load(a.scaled_sums + j);
      typename Ops::VI correction = Ops::zero_i();
      if (Ops::kInt8QueryOffset != 0) correction = Ops::shl7_i(Ops::load_i(a.sums + j));
      for (int i = 0; i < m; ++i) {
        uint8_t* lane = buf + (i * kTileWidth + v * Ops::W) * 4;
        typename Ops::VI dot;
        std::memcpy(&dot, lane, sizeof dot);
        typename Ops::V s = Ops::mul(Ops::to_float(Ops::sub_i(dot, correction)),
                                     Ops::mul(scale, Ops::set1(params[3 * i])));
        s = Ops::fmadd(offset, Ops::set1(params[3 * i + 2]), s);
        s = Ops::fmadd(scaled_sum, Ops::set1(params[3 * i + 1]), s);
        std::memcpy(lane, &s, sizeof s);
      }
    }
  }
};

// Exact scores of a few points, as Scan<TileF32> computes them: per point one
// chain of fused multiply-adds over the dimensions in order, from zero, then
// the bias. Only for units whose Ops::fmadd is fused (std::fma matches it);
// eight points at a time keep eight chains in flight.
inline void ScorePointsF32(const annlib::PointScoreArgs& a) {
  constexpr int kChains = 8;
  for (int c0 = 0; c0 < a.count; c0 += kChains) {
    const int n = a.count - c0 < kChains ? a.count - c0 : kChains;
    const float* x[kChains];
    float acc[kChains];
    for (int c = 0; c < kChains; ++c) {
      const int64_t j = a.points[c0 + (c < n ? c : 0)].id;
      x[c] = a.panels + (j / kPanelWidth) * int64_t{a.dim} * kPanelWidth + j % kPanelWidth;
      acc[c] = 0.0f;
    }
    for (int64_t t = 0; t < a.dim; ++t) {
      const float q = a.query[t];
      for (int c = 0; c < kChains; ++c) acc[c] = std::fma(q, x[c][t * kPanelWidth], acc[c]);
    }
    for (int c = 0; c < n; ++c) a.points[c0 + c].score = acc[c] + a.bias[a.points[c0 + c].id];
  }
}

// ---------------------------------------------------------------- driver

template <class T, int M>
inline void TileFor(int m, const uint8_t* panel_rows, int lane_off, const uint8_t* query_rows,
                    int64_t nrows, bool first, void* acc) {
  if constexpr (M > 1) {
    if (m < M) return TileFor<T, M - 1>(m, panel_rows, lane_off, query_rows, nrows, first, acc);
  }
  T::template Tile<M>(panel_rows, lane_off, query_rows, nrows, first, acc);
}

// Rows of a panel scanned per pass: a 16 KB slice stays in L1 while every
// query group of the block streams over it (K-blocking, as in a GEMM).
constexpr int64_t kRowsPerSlice = 128;
// Partial sums of one chunk of panels for the whole query block stay in L2.
constexpr int64_t kAccBytesPerChunk = 256 * 1024;
constexpr int kTilesPerPanel = kPanelWidth / kTileWidth;

template <class T>
void Scan(const ScanArgs& a) {
  const int nq = a.num_queries;
  if (nq <= 0 || a.panel_begin >= a.panel_end) return;
  const int groups = (nq + kMR - 1) / kMR;
  const int64_t rows = DimGroups(a.dim, T::kDimsPerRow);
  const int64_t group_bytes = (rows * kMR * T::kQueryRowBytes + 63) / 64 * 64;
  const int64_t tile_acc_bytes = int64_t{kMR} * kTileWidth * 4;
  int64_t chunk = kAccBytesPerChunk / (tile_acc_bytes * kTilesPerPanel * groups);
  if (chunk < 1) chunk = 1;
  // Small scans (one query over a few centroids) allocate only what they use.
  if (chunk > a.panel_end - a.panel_begin) chunk = a.panel_end - a.panel_begin;
  const int64_t acc_bytes = chunk * kTilesPerPanel * groups * tile_acc_bytes;
  const int64_t param_bytes = (int64_t{groups} * kMR * (T::kQueryParams + 1) * 4 + 63) / 64 * 64;
  const int64_t staging_bytes = T::kStaged ? kRowsPerSlice * kRowBytes : 0;

  // One allocation: packed queries, accumulators, per-query params, thresholds,
  // the staged slice.
  uint8_t* scratch = static_cast<uint8_t*>(
      annlib::AlignedAlloc64(groups * group_bytes + acc_bytes + 2 * param_bytes + staging_bytes));
  if (scratch == nullptr) throw std::bad_alloc();
  uint8_t* qpack = scratch;
  uint8_t* acc = scratch + groups * group_bytes;
  float* params = reinterpret_cast<float*>(acc + acc_bytes);
  float* thresholds = reinterpret_cast<float*>(acc + acc_bytes + param_bytes);
  uint8_t* staging = acc + acc_bytes + 2 * param_bytes;

  for (int g = 0; g < groups; ++g) {
    const int m = nq - g * kMR < kMR ? nq - g * kMR : kMR;
    T::PackQueries(a.queries + int64_t{g} * kMR * a.dim, m, a.dim, qpack + g * group_bytes,
                   params + int64_t{g} * kMR * T::kQueryParams);
  }
  const uint8_t* panels = static_cast<const uint8_t*>(a.panels);
  // A staged scan reads float32 panels (one row per dimension).
  const int64_t panel_bytes = (T::kStaged ? int64_t{a.dim} : rows) * kRowBytes;
  auto tile_acc = [&](int64_t p_local, int tile, int g) {
    return acc + ((p_local * kTilesPerPanel + tile) * groups + g) * tile_acc_bytes;
  };

  for (int64_t c0 = a.panel_begin; c0 < a.panel_end; c0 += chunk) {
    const int64_t c1 = c0 + chunk < a.panel_end ? c0 + chunk : a.panel_end;
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerSlice) {
      const int64_t nrows = rows - r0 < kRowsPerSlice ? rows - r0 : kRowsPerSlice;
      for (int64_t p = c0; p < c1; ++p) {
        const uint8_t* slice = T::kStaged ? staging : panels + p * panel_bytes + r0 * kRowBytes;
        if constexpr (T::kStaged) T::Stage(panels + p * panel_bytes, a.dim, r0, nrows, staging);
        for (int tile = 0; tile < kTilesPerPanel; ++tile)
          for (int g = 0; g < groups; ++g) {
            const int m = nq - g * kMR < kMR ? nq - g * kMR : kMR;
            TileFor<T, kMR>(m, slice, tile * kTileWidth, qpack + g * group_bytes + r0 * kMR * T::kQueryRowBytes,
                            nrows, r0 == 0, tile_acc(p - c0, tile, g));
          }
      }
    }
    // Scores of the chunk are complete: select, query group by query group,
    // in increasing point order (ties then favour the smaller id).
    for (int g = 0; g < groups; ++g) {
      const int m = nq - g * kMR < kMR ? nq - g * kMR : kMR;
      SelectState* st = a.raw_scores != nullptr ? nullptr : a.states + int64_t{g} * kMR;
      if (st != nullptr && a.num_bins == 0)
        for (int i = 0; i < m; ++i) thresholds[i] = HeapThreshold(st[i], a.k);
      for (int64_t p = c0; p < c1; ++p)
        for (int tile = 0; tile < kTilesPerPanel; ++tile) {
          const int64_t j0 = p * kPanelWidth + tile * kTileWidth;
          float* out = reinterpret_cast<float*>(tile_acc(p - c0, tile, g));
          T::Finish(m, out, params + int64_t{g} * kMR * T::kQueryParams, j0, a);
          if (a.raw_scores != nullptr)
            StoreRaw(out, m, j0, a.bias + j0, a.raw_scores + int64_t{g} * kMR * a.raw_stride, a.raw_stride);
          else
            Epilogue(out, m, j0, a.bias + j0, st, a, thresholds);
        }
    }
  }
  annlib::AlignedFree(scratch);
}

}  // namespace
