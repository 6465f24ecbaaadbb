// Selections over one row of float scores, W lanes compared at a time: the
// per-point scans of the SOAR spill assignment (quantization/soar.cpp), which
// over a few thousand centers per point were half its time in scalar code,
// and the leaf choice over a query's centroid scores (search/topk.cpp
// SelectBestScores). Included by each dense scan unit after its Ops (which
// provide W, V, load, set1, min, max and gt_mask). Values are never NaN
// (finite scores of checked data) except where a function says otherwise.

namespace {

// Indices i of values [n] with values[i] <= bound, ascending, into out; the count.
inline int32_t AtMost(const float* values, int32_t n, float bound, int32_t* out) {
  const typename Ops::V limit = Ops::set1(bound);
  int32_t count = 0, i = 0;
  for (; i + Ops::W <= n; i += Ops::W) {
    // Lanes not above the bound; a full mask of W bits.
    uint32_t mask = ~Ops::gt_mask(Ops::load(values + i), limit) & (Ops::W == 32 ? ~0u : (1u << Ops::W) - 1);
    for (; mask != 0; mask &= mask - 1) out[count++] = i + annlib::LowestBit32(mask);
  }
  for (; i < n; ++i)
    if (values[i] <= bound) out[count++] = i;
  return count;
}

// maxima[l] = the largest of values[r * lanes + l] over the whole rows r
// (lanes a multiple of W, at most n): each is a value at its own index, so
// the c-th largest of them is a bound that at least c values reach. (A lane
// with a NaN holds the NaN or another of its values: one at its own index.)
inline void LaneMaxima(const float* values, int32_t n, int32_t lanes, float* maxima) {
  for (int32_t l = 0; l < lanes; l += Ops::W) Ops::store(maxima + l, Ops::load(values + l));
  for (int32_t row = lanes; row + lanes <= n; row += lanes)
    for (int32_t l = 0; l < lanes; l += Ops::W)
      Ops::store(maxima + l, Ops::max(Ops::load(maxima + l), Ops::load(values + row + l)));
}

// Candidates {value, index} of values [n] not below bound (NaN included),
// in index order, into out; the count. The lanes of 64 values are gathered
// into one word before any is written: one branch per word, not per vector
// (where a few values in a hundred pass).
inline int32_t AtLeast(const float* values, int32_t n, float bound, annlib::Candidate* out) {
  static_assert(64 % Ops::W == 0, "whole vectors per word");
  const typename Ops::V limit = Ops::set1(bound);
  const uint64_t lanes = Ops::W == 64 ? ~uint64_t{0} : (uint64_t{1} << Ops::W) - 1;
  int32_t count = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    uint64_t mask = 0;
    for (int v = 0; v < 64 / Ops::W; ++v)
      mask |= (~uint64_t{Ops::gt_mask(limit, Ops::load(values + i + v * Ops::W))} & lanes) << (v * Ops::W);
    for (; mask != 0; mask &= mask - 1) {
      const int32_t j = i + annlib::LowestBit64(mask);
      out[count++] = annlib::Candidate{values[j], j};
    }
  }
  for (; i < n; ++i)
    if (!(values[i] < bound)) out[count++] = annlib::Candidate{values[i], i};
  return count;
}

// The min(k, n) indices of the smallest values, smallest first, k <= kMaxSmallest;
// equal values keep index order (a later one enters only if strictly smaller than
// the run's last). The count.
constexpr int32_t kMaxSmallest = 16;

inline int32_t Smallest(const float* values, int32_t n, int32_t k, int32_t* out) {
  k = k < kMaxSmallest ? k : kMaxSmallest;
  if (k <= 0) return 0;
  int32_t have = 0;
  // Values from here up cannot enter: the run's last value once it holds k, and
  // before that a bound on it, so that few values enter while it tightens: each of
  // the W lanes' minima over the full vectors is a value at a distinct index, so
  // at least k values are <= the k-th smallest of them, and so is every value the
  // run ends with. (Values equal to it may still enter: the bound is the next
  // float above it.)
  float worst = std::numeric_limits<float>::infinity();
  const int32_t full = n / Ops::W * Ops::W;
  if (k <= Ops::W && full > 0) {
    typename Ops::V lane_min = Ops::load(values);
    for (int32_t i = Ops::W; i < full; i += Ops::W) lane_min = Ops::min(lane_min, Ops::load(values + i));
    float lanes[Ops::W];
    Ops::store(lanes, lane_min);
    for (int32_t j = 0; j < k; ++j)  // lanes[0, k) sorted: the k smallest, by selection
      for (int32_t l = j + 1; l < Ops::W; ++l)
        if (lanes[l] < lanes[j]) {
          const float t = lanes[j];
          lanes[j] = lanes[l];
          lanes[l] = t;
        }
    worst = std::nextafter(lanes[k - 1], std::numeric_limits<float>::infinity());
  }
  auto enter = [&](int32_t i) {
    const float v = values[i];
    if (!(v < worst)) return;
    int32_t at = have < k ? have++ : k - 1;
    for (; at > 0 && v < values[out[at - 1]]; --at) out[at] = out[at - 1];
    out[at] = i;
    if (have == k) worst = values[out[k - 1]];
  };
  int32_t i = 0;
  for (; i + Ops::W <= n; i += Ops::W) {
    // Lanes below the run's last; rechecked one by one as it falls.
    uint32_t mask = Ops::gt_mask(Ops::set1(worst), Ops::load(values + i));
    for (; mask != 0; mask &= mask - 1) enter(i + annlib::LowestBit32(mask));
  }
  for (; i < n; ++i) enter(i);
  return have;
}

}  // namespace
