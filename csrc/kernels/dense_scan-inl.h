// Body of the dense scan kernels, included once by each ISA translation unit
// (dense_scan_<isa>.cpp) after it has defined, inside its own namespace:
//
//   struct Ops {            // W float lanes of one SIMD register
//     static constexpr int W;
//     using V;  using VI;   // float / int32 vectors of W lanes
//     V zero(); V load(const float*); V set1(float); V add(V,V); V mul(V,V);
//     V fmadd(V a, V b, V c);               // a*b + c
//     void store(float*, V);
//     uint32_t gt_mask(V a, V b);           // bit l set where a[l] > b[l]
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
using annlib::SelectState;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kVecsPerTile = kTileWidth / Ops::W;
static_assert(kTileWidth % Ops::W == 0, "tile must be whole vectors");
static_assert(kPanelWidth % kTileWidth == 0, "panel must be whole tiles");
// Bytes of database panels scanned per query group before moving on: keeps
// the chunk in L2 while every query group of the block streams over it.
constexpr int64_t kChunkBytes = 192 * 1024;

inline int64_t DimGroups(int dim, int per_group) { return (dim + per_group - 1) / per_group; }

// ---------------------------------------------------------------- selection

// Min-heap ordered so the root is the worst kept entry: lower score is worse,
// and on equal scores the larger id is worse (ground truth breaks ties by id).
inline bool Worse(float sa, int32_t ia, float sb, int32_t ib) {
  return sa < sb || (sa == sb && ia > ib);
}

inline void HeapPush(SelectState& st, int k, float s, int32_t id) {
  float* sc = st.scores;
  int32_t* ids = st.ids;
  if (st.size < k) {
    int i = st.size++;
    while (i > 0) {
      int parent = (i - 1) >> 1;
      if (!Worse(s, id, sc[parent], ids[parent])) break;
      sc[i] = sc[parent];
      ids[i] = ids[parent];
      i = parent;
    }
    sc[i] = s;
    ids[i] = id;
    return;
  }
  if (!Worse(sc[0], ids[0], s, id)) return;
  int i = 0;
  for (;;) {
    int child = 2 * i + 1;
    if (child >= k) break;
    if (child + 1 < k && Worse(sc[child + 1], ids[child + 1], sc[child], ids[child])) ++child;
    if (!Worse(sc[child], ids[child], s, id)) break;
    sc[i] = sc[child];
    ids[i] = ids[child];
    i = child;
  }
  sc[i] = s;
  ids[i] = id;
}

inline float HeapThreshold(const SelectState& st, int k) {
  return st.size < k ? kNegInf : st.scores[0];
}

// Adds the per-point bias to a tile of raw scores and feeds every survivor to
// the selection state of its query. Survivors are rare once the threshold has
// risen, so the common path is one compare per vector.
inline void Epilogue(float* out, int m, int64_t j0, const float* bias, SelectState* states,
                     const ScanArgs& a, float* thresholds) {
  typename Ops::V b[kVecsPerTile];
  for (int v = 0; v < kVecsPerTile; ++v) b[v] = Ops::load(bias + v * Ops::W);
  if (a.num_bins == 0) {
    for (int i = 0; i < m; ++i) {
      float* row = out + i * kTileWidth;
      typename Ops::V thr = Ops::set1(thresholds[i]);
      for (int v = 0; v < kVecsPerTile; ++v) {
        typename Ops::V s = Ops::add(Ops::load(row + v * Ops::W), b[v]);
        uint32_t mask = Ops::gt_mask(s, thr);
        if (mask == 0) continue;
        Ops::store(row + v * Ops::W, s);
        SelectState& st = states[i];
        while (mask != 0) {
          int lane = __builtin_ctz(mask);
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
      uint32_t mask = Ops::gt_mask(s, Ops::load(st.scores + pos[v]));
      if (mask == 0) continue;
      Ops::store(row + v * Ops::W, s);
      while (mask != 0) {
        int lane = __builtin_ctz(mask);
        mask &= mask - 1;
        st.scores[pos[v] + lane] = row[v * Ops::W + lane];
        st.ids[pos[v] + lane] = static_cast<int32_t>(j0 + v * Ops::W + lane);
      }
    }
  }
}

// ---------------------------------------------------------------- tiles
// Each tile policy knows its query packing and computes raw scores
// out[M][kTileWidth] for M <= kMR queries against kTileWidth points of a panel.

struct TileF32 {
  static constexpr int kPerGroup = 1;  // dimensions per packed element
  static int64_t QueryGroupBytes(int dim) { return int64_t{dim} * kMR * sizeof(float); }
  static void PackQueries(const float* q, int m, int dim, void* dst, float* /*qscale*/) {
    float* out = static_cast<float*>(dst);
    for (int t = 0; t < dim; ++t)
      for (int i = 0; i < kMR; ++i) out[t * kMR + i] = i < m ? q[int64_t{i} * dim + t] : 0.0f;
  }
  template <int M>
  static void Tile(const uint8_t* panel, int lane_off, const void* qpack, int dim, const float*,
                   int64_t, const ScanArgs&, float* out) {
    const float* x = reinterpret_cast<const float*>(panel) + lane_off;
    const float* q = static_cast<const float*>(qpack);
    typename Ops::V acc[M][kVecsPerTile];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::zero();
    for (int t = 0; t < dim; ++t) {
      typename Ops::V xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v) xv[v] = Ops::load(x + t * kPanelWidth + v * Ops::W);
      for (int i = 0; i < M; ++i) {
        typename Ops::V qi = Ops::set1(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::fmadd(qi, xv[v], acc[i][v]);
      }
    }
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) Ops::store(out + i * kTileWidth + v * Ops::W, acc[i][v]);
  }
};

// bfloat16 database, float32 query: each bf16 pair widens to two float vectors.
struct TileBf16 {
  static constexpr int kPerGroup = 2;
  static int64_t QueryGroupBytes(int dim) {
    return DimGroups(dim, 2) * kMR * 2 * sizeof(float);
  }
  static void PackQueries(const float* q, int m, int dim, void* dst, float*) {
    float* out = static_cast<float*>(dst);
    const int64_t groups = DimGroups(dim, 2);
    for (int64_t t = 0; t < groups; ++t)
      for (int i = 0; i < kMR; ++i)
        for (int h = 0; h < 2; ++h) {
          const int64_t dd = 2 * t + h;
          out[(t * kMR + i) * 2 + h] = (i < m && dd < dim) ? q[int64_t{i} * dim + dd] : 0.0f;
        }
  }
  template <int M>
  static void Tile(const uint8_t* panel, int lane_off, const void* qpack, int dim, const float*,
                   int64_t, const ScanArgs&, float* out) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(panel) + 2 * lane_off;
    const float* q = static_cast<const float*>(qpack);
    const int64_t groups = DimGroups(dim, 2);
    typename Ops::V acc[M][kVecsPerTile];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::zero();
    for (int64_t t = 0; t < groups; ++t) {
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
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) Ops::store(out + i * kTileWidth + v * Ops::W, acc[i][v]);
  }
};

// int8 database (per-point scale) and int8 query (per-query scale). The integer
// dot product is exact; scores are dequantised in the tile.
struct TileInt8 {
  static constexpr int kPerGroup = 4;
  static int64_t QueryGroupBytes(int dim) { return DimGroups(dim, 4) * kMR * sizeof(int32_t); }
  static void PackQueries(const float* q, int m, int dim, void* dst, float* qscale) {
    int32_t* out = static_cast<int32_t*>(dst);
    const int64_t groups = DimGroups(dim, 4);
    for (int i = 0; i < kMR; ++i) {
      float max_abs = 0.0f;
      if (i < m)
        for (int t = 0; t < dim; ++t) max_abs = std::fmax(max_abs, std::fabs(q[int64_t{i} * dim + t]));
      const float scale = max_abs > 0.0f ? max_abs / 127.0f : 1.0f;
      if (i < m) qscale[i] = scale;
      for (int64_t t = 0; t < groups; ++t) {
        uint32_t word = 0;
        for (int h = 0; h < 4; ++h) {
          const int64_t dd = 4 * t + h;
          int code = 0;
          if (i < m && dd < dim) code = static_cast<int>(std::nearbyint(q[int64_t{i} * dim + dd] / scale));
          code += Ops::kInt8QueryOffset;
          word |= (static_cast<uint32_t>(code) & 0xFFu) << (8 * h);
        }
        out[t * kMR + i] = static_cast<int32_t>(word);
      }
    }
  }
  template <int M>
  static void Tile(const uint8_t* panel, int lane_off, const void* qpack, int dim,
                   const float* qscale, int64_t j0, const ScanArgs& a, float* out) {
    const int8_t* x = reinterpret_cast<const int8_t*>(panel) + 4 * lane_off;
    const int32_t* q = static_cast<const int32_t*>(qpack);
    const int64_t groups = DimGroups(dim, 4);
    typename Ops::VI acc[M][kVecsPerTile];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::zero_i();
    for (int64_t t = 0; t < groups; ++t) {
      const int8_t* xt = x + t * 4 * kPanelWidth;
      typename Ops::XI xv[kVecsPerTile];
      for (int v = 0; v < kVecsPerTile; ++v) xv[v] = Ops::load_x(xt + v * 4 * Ops::W);
      for (int i = 0; i < M; ++i) {
        typename Ops::VI qi = Ops::set1_i(q[t * kMR + i]);
        for (int v = 0; v < kVecsPerTile; ++v) acc[i][v] = Ops::dot4(acc[i][v], qi, xv[v]);
      }
    }
    for (int v = 0; v < kVecsPerTile; ++v) {
      const int64_t j = j0 + v * Ops::W;
      typename Ops::V pscale = Ops::load(a.scale + j);
      typename Ops::VI correction = Ops::zero_i();
      if (Ops::kInt8QueryOffset != 0) correction = Ops::shl7_i(Ops::load_i(a.sums + j));
      for (int i = 0; i < M; ++i) {
        typename Ops::V s = Ops::to_float(Ops::sub_i(acc[i][v], correction));
        s = Ops::mul(s, Ops::mul(pscale, Ops::set1(qscale[i])));
        Ops::store(out + i * kTileWidth + v * Ops::W, s);
      }
    }
  }
};

// ---------------------------------------------------------------- driver

template <class T, int M>
inline void TileFor(int m, const uint8_t* panel, int lane_off, const void* qpack, int dim,
                    const float* qscale, int64_t j0, const ScanArgs& a, float* out) {
  if constexpr (M > 1) {
    if (m < M) return TileFor<T, M - 1>(m, panel, lane_off, qpack, dim, qscale, j0, a, out);
  }
  T::template Tile<M>(panel, lane_off, qpack, dim, qscale, j0, a, out);
}

template <class T>
void Scan(const ScanArgs& a) {
  const int nq = a.num_queries;
  if (nq <= 0 || a.panel_begin >= a.panel_end) return;
  const int groups = (nq + kMR - 1) / kMR;
  const int64_t group_bytes = (T::QueryGroupBytes(a.dim) + 63) / 64 * 64;
  const int64_t panel_bytes = DimGroups(a.dim, T::kPerGroup) * kPanelWidth * 4;

  // One allocation: packed query groups, query scales, thresholds, tile output.
  const int64_t qscale_bytes = (int64_t{groups} * kMR * sizeof(float) + 63) / 64 * 64;
  const int64_t out_bytes = int64_t{kMR} * kTileWidth * sizeof(float);
  uint8_t* scratch = static_cast<uint8_t*>(
      std::aligned_alloc(64, groups * group_bytes + 2 * qscale_bytes + out_bytes + 64));
  if (scratch == nullptr) return;  // caller sized the call; a null result would be a bug upstream
  uint8_t* qpack = scratch;
  float* qscale = reinterpret_cast<float*>(scratch + groups * group_bytes);
  float* thresholds = reinterpret_cast<float*>(scratch + groups * group_bytes + qscale_bytes);
  float* out = reinterpret_cast<float*>(scratch + groups * group_bytes + 2 * qscale_bytes);

  for (int g = 0; g < groups; ++g) {
    const int m = nq - g * kMR < kMR ? nq - g * kMR : kMR;
    T::PackQueries(a.queries + int64_t{g} * kMR * a.dim, m, a.dim, qpack + g * group_bytes,
                   qscale + g * kMR);
  }
  const uint8_t* panels = static_cast<const uint8_t*>(a.panels);
  int64_t chunk = kChunkBytes / panel_bytes;
  if (chunk < 1) chunk = 1;

  for (int64_t c0 = a.panel_begin; c0 < a.panel_end; c0 += chunk) {
    const int64_t c1 = c0 + chunk < a.panel_end ? c0 + chunk : a.panel_end;
    for (int g = 0; g < groups; ++g) {
      const int m = nq - g * kMR < kMR ? nq - g * kMR : kMR;
      SelectState* st = a.states + int64_t{g} * kMR;
      if (a.num_bins == 0)
        for (int i = 0; i < m; ++i) thresholds[i] = HeapThreshold(st[i], a.k);
      for (int64_t p = c0; p < c1; ++p) {
        const uint8_t* panel = panels + p * panel_bytes;
        for (int off = 0; off < kPanelWidth; off += kTileWidth) {
          const int64_t j0 = p * kPanelWidth + off;
          TileFor<T, kMR>(m, panel, off, qpack + g * group_bytes, a.dim, qscale + g * kMR, j0, a,
                          out);
          Epilogue(out, m, j0, a.bias + j0, st, a, thresholds);
        }
      }
    }
  }
  std::free(scratch);
}

}  // namespace
