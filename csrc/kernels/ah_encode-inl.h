// Anisotropic 4-bit encoding of one point, included in each dense scan unit
// after its Ops: a block's 16 centers are the lanes (Ops::W at a time) of its
// distances and projections; the descent's trial losses, in double, are plain
// loops the unit's flags vectorize. Every level does the same float and double
// operations in the same order (no fused multiply-adds), so the codes are the
// same at every level. No STL: ISA units must not share inline library code
// with baseline ones.

namespace {

constexpr int kAhCenters = 16;

// Sorts keys[0, n) ascending, stably, carrying order[0, n) = 0..n-1 along: a
// radix sort, four passes of a byte. keys and order hold 2n entries (the
// second halves are the passes' other buffers; after four passes the result
// is back in the first).
inline void AhSortKeys(uint32_t* keys, int32_t n, int32_t* order) {
  uint32_t* key_in = keys;
  uint32_t* key_out = keys + n;
  int32_t* at_in = order;
  int32_t* at_out = order + n;
  for (int32_t b = 0; b < n; ++b) at_in[b] = b;
  for (int shift = 0; shift < 32; shift += 8) {
    int32_t start[257] = {};
    for (int32_t i = 0; i < n; ++i) ++start[((key_in[i] >> shift) & 0xFFu) + 1];
    for (int d = 0; d < 256; ++d) start[d + 1] += start[d];
    for (int32_t i = 0; i < n; ++i) {
      const int32_t to = start[(key_in[i] >> shift) & 0xFFu]++;
      key_out[to] = key_in[i];
      at_out[to] = at_in[i];
    }
    uint32_t* k = key_in;
    key_in = key_out;
    key_out = k;
    int32_t* o = at_in;
    at_in = at_out;
    at_out = o;
  }
}

// One coordinate-descent step on a block: the center whose trial loss beats
// the best so far by more than a hair, walking the 16 in order from the
// current one's loss (-1: none does). The trial losses and the mask of those
// that beat the current one come first, independent of each other, so they
// vectorize (out of line: inlined into the descent, GCC 12 left them scalar,
// a third of the encoding's time); the walk visits only the mask's centers
// (none, mostly).
ANNLIB_NOINLINE int AhBetterCenter(const float* dist, const float* proj, double p_rest, double w, double cur_loss) {
  alignas(64) double loss[kAhCenters];
  const double hair = 1e-12 * (cur_loss < 0.0 ? -cur_loss : cur_loss);
  const double bound = cur_loss - hair;
  uint32_t better = 0;
  for (int j = 0; j < kAhCenters; ++j) {
    const double np = p_rest + proj[j];
    loss[j] = dist[j] + w * np * np;
    better |= static_cast<uint32_t>(loss[j] < bound) << j;
  }
  int best = -1;
  double best_loss = cur_loss;
  for (; better != 0; better &= better - 1) {
    const int j = annlib::LowestBit32(better);
    if (loss[j] < best_loss - hair) {
      best_loss = loss[j];
      best = j;
    }
  }
  return best;
}

// One block's start, the 16 centers in Ops::W lanes: the squared distances
// sum_t (r_t - c_t)^2 and, for the descent, the projections sum_t (r_t - c_t) x_t,
// each added in dimension order (separate multiplies and adds, as the scalar
// unit's), stored to dist / proj; returns the nearest center, the first of
// equal ones. DPB > 0 fixes the block width at compile time.
template <int DPB>
inline int AhBlockStart(const float* rb, const float* xb, const float* cb, int32_t dpb, bool descend, float* dist,
                        float* proj) {
  const int32_t width = DPB > 0 ? DPB : dpb;
  for (int v = 0; v < kAhCenters; v += Ops::W) {
    typename Ops::V d = Ops::zero(), pr = Ops::zero();
    for (int32_t t = 0; t < width; ++t) {
      const typename Ops::V e = Ops::sub(Ops::set1(rb[t]), Ops::load(cb + t * kAhCenters + v));
      d = Ops::add(d, Ops::mul(e, e));
      if (descend) pr = Ops::add(pr, Ops::mul(e, Ops::set1(xb[t])));
    }
    Ops::store(dist + v, d);
    if (descend) Ops::store(proj + v, pr);
  }
  // The least distance (a tree of minimums), then the lanes not above it. Sums of
  // squares are never NaN for finite input; if they were, 0.
  float m8[8], m4[4];
  for (int j = 0; j < 8; ++j) m8[j] = dist[j] < dist[j + 8] ? dist[j] : dist[j + 8];
  for (int j = 0; j < 4; ++j) m4[j] = m8[j] < m8[j + 4] ? m8[j] : m8[j + 4];
  const float lo = m4[0] < m4[2] ? m4[0] : m4[2], hi = m4[1] < m4[3] ? m4[1] : m4[3];
  const typename Ops::V least = Ops::set1(lo < hi ? lo : hi);
  constexpr uint32_t kLanes = Ops::W >= 32 ? ~0u : (1u << Ops::W) - 1;
  uint32_t at = 0;
  for (int v = 0; v < kAhCenters; v += Ops::W) at |= (~Ops::gt_mask(Ops::load(dist + v), least) & kLanes) << v;
  return at == 0 ? 0 : annlib::LowestBit32(at);
}

template <int DPB>
inline void AhStartBlocks(const annlib::AhEncodePointArgs& a, bool descend) {
  const int32_t nb = a.num_blocks, dpb = a.dims_per_block;
  for (int32_t b = 0; b < nb; ++b) {
    const int64_t at = int64_t{b} * dpb;
    a.code[b] = static_cast<uint8_t>(AhBlockStart<DPB>(a.residual + at, a.original + at,
                                                       a.centers_t + at * kAhCenters, dpb, descend,
                                                       a.dist + b * kAhCenters, a.proj + b * kAhCenters));
  }
}

inline void AhEncodePoint(const annlib::AhEncodePointArgs& a) {
  const int32_t nb = a.num_blocks, dpb = a.dims_per_block;
  const float* r = a.residual;
  uint8_t* code = a.code;
  const bool descend = a.w != 0.0 && a.max_rounds > 0;
  // Each block's nearest center (dpb 1, 2 and 4 with loops unrolled at compile time).
  switch (dpb) {
    case 1: AhStartBlocks<1>(a, descend); break;
    case 2: AhStartBlocks<2>(a, descend); break;
    case 4: AhStartBlocks<4>(a, descend); break;
    default: AhStartBlocks<0>(a, descend); break;
  }
  if (!descend) return;

  // Coordinate descent, blocks with the largest residual first (equal ones in
  // block order: keys are the norms' inverted bits, as a non-negative float
  // orders as its bits); p is the running <e, x>, so each trial costs O(1).
  const double w = a.w;
  double p = 0.0;
  for (int32_t b = 0; b < nb; ++b) {
    p += a.proj[b * kAhCenters + code[b]];
    double n2 = 0.0;
    for (int32_t t = 0; t < dpb; ++t) n2 += double{r[int64_t{b} * dpb + t]} * r[int64_t{b} * dpb + t];
    const float norm2 = static_cast<float>(n2);
    uint32_t bits;
    std::memcpy(&bits, &norm2, sizeof bits);
    a.keys[b] = ~bits;
  }
  AhSortKeys(a.keys, nb, a.order);
  for (int32_t round = 0; round < a.max_rounds; ++round) {
    bool changed = false;
    for (int32_t i = 0; i < nb; ++i) {
      const int32_t b = a.order[i];
      const float* dist = a.dist + b * kAhCenters;
      const float* proj = a.proj + b * kAhCenters;
      const int cur = code[b];
      const double p_rest = p - proj[cur];
      const int best = AhBetterCenter(dist, proj, p_rest, w, dist[cur] + w * p * p);
      if (best >= 0 && best != cur) {
        code[b] = static_cast<uint8_t>(best);
        p = p_rest + proj[best];
        changed = true;
      }
    }
    if (!changed) break;
  }
}

}  // namespace
