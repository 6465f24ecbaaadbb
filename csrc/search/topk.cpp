#include "topk.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace annlib {
namespace {

constexpr int kBuckets = 256;

// Keeps (in front) the entries of the highest buckets that together hold at
// least `count` entries; returns how many were kept (n when no progress).
int64_t KeepTopBuckets(Candidate* first, int64_t n, int64_t count) {
  float lo = first[0].score, hi = first[0].score;
  for (int64_t i = 1; i < n; ++i) {
    lo = first[i].score < lo ? first[i].score : lo;
    hi = first[i].score > hi ? first[i].score : hi;
  }
  const float range = hi - lo;
  if (!(range > 0.0f) || !std::isfinite(range)) return n;  // all equal, or not bucketable
  const float scale = static_cast<float>(kBuckets) / range * 0.9999f;
  auto bucket = [&](float score) {
    const int b = static_cast<int>((score - lo) * scale);
    return b < 0 ? 0 : (b >= kBuckets ? kBuckets - 1 : b);
  };
  int64_t hist[kBuckets] = {};
  for (int64_t i = 0; i < n; ++i) ++hist[bucket(first[i].score)];
  int cut = kBuckets - 1;
  for (int64_t above = hist[cut]; above < count; above += hist[cut]) --cut;
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Candidate c = first[i];
    first[kept] = c;  // kept <= i: only already-read entries are overwritten
    kept += bucket(c.score) >= cut;
  }
  return kept;
}

}  // namespace

int64_t PartitionBest(Candidate* first, int64_t n, int64_t count) {
  if (count >= n) return n;
  if (count <= 0) return 0;
  // Histogram rounds while they pay (a large remainder) and make progress.
  while (n > 2 * count + 64) {
    const int64_t kept = KeepTopBuckets(first, n, count);
    if (kept == n) break;
    n = kept;
  }
  std::nth_element(first, first + (count - 1), first + n, BetterOrder());
  return count;
}

void WriteTopK(std::vector<Candidate>& cands, int32_t k, int64_t* out_ids, float* out_scores) {
  const size_t keep = std::min<size_t>(k, cands.size());
  std::partial_sort(cands.begin(), cands.begin() + keep, cands.end(), BetterOrder());
  for (int32_t i = 0; i < k; ++i) {
    const bool have = static_cast<size_t>(i) < keep;
    out_ids[i] = have ? cands[i].id : -1;
    out_scores[i] = have ? cands[i].score : -std::numeric_limits<float>::infinity();
  }
}

void CompactCandidates(CandidateBuffer& b) {
  if (b.size <= b.keep) return;
  b.size = static_cast<int32_t>(PartitionBest(b.entries, b.size, b.keep));
  float worst = b.entries[0].score;
  for (int32_t i = 1; i < b.size; ++i) worst = b.entries[i].score < worst ? b.entries[i].score : worst;
  b.threshold = worst;
}

}  // namespace annlib
