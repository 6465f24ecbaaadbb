#include "topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace annlib {
namespace {

// Smallest and largest score of first[0, n), n > 0. Four independent chains:
// a single one would wait on min/max latency at every entry.
void ScoreRange(const Candidate* first, int64_t n, float* lo_out, float* hi_out) {
  float lo[4], hi[4];
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = first[0].score;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) {
      const float s = first[i + j].score;
      lo[j] = s < lo[j] ? s : lo[j];
      hi[j] = s > hi[j] ? s : hi[j];
    }
  }
  for (; i < n; ++i) {
    lo[0] = first[i].score < lo[0] ? first[i].score : lo[0];
    hi[0] = first[i].score > hi[0] ? first[i].score : hi[0];
  }
  for (int j = 1; j < 4; ++j) {
    lo[0] = lo[j] < lo[0] ? lo[j] : lo[0];
    hi[0] = hi[j] > hi[0] ? hi[j] : hi[0];
  }
  *lo_out = lo[0];
  *hi_out = hi[0];
}

// Keeps (in front) the entries of the highest buckets of score that together
// hold at least `count` entries; returns how many were kept (n when no
// progress). About two entries per bucket, at most 256 buckets: the walk
// down from the top bucket stays short on small buffers.
int64_t KeepTopBuckets(Candidate* first, int64_t n, int64_t count) {
  constexpr int kMaxBuckets = 256;
  float lo, hi;
  ScoreRange(first, n, &lo, &hi);
  const float range = hi - lo;
  if (!(range > 0.0f) || !std::isfinite(range)) return n;  // all equal, or not bucketable
  const int buckets = static_cast<int>(std::clamp<int64_t>(n / 2, 16, kMaxBuckets));
  const float scale = static_cast<float>(buckets) / range * 0.9999f;
  auto bucket = [&](float score) {
    const int b = static_cast<int>((score - lo) * scale);
    return b < 0 ? 0 : (b >= buckets ? buckets - 1 : b);
  };
  int32_t hist[kMaxBuckets] = {};
  for (int64_t i = 0; i < n; ++i) ++hist[bucket(first[i].score)];
  int cut = buckets - 1;
  for (int64_t above = hist[cut]; above < count; above += hist[cut]) --cut;
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Candidate c = first[i];
    first[kept] = c;  // kept <= i: only already-read entries are overwritten
    kept += bucket(c.score) >= cut;
  }
  return kept;
}

// Better() without branches: the selection below evaluates it once per
// entry and round on data with no order, where a branch is a coin flip.
inline bool BetterNoBranch(const Candidate& a, const Candidate& b) {
  return (a.score > b.score) | ((a.score == b.score) & (a.id < b.id));
}

const Candidate& Median3(const Candidate& a, const Candidate& b, const Candidate& c) {
  if (Better(a, b)) return Better(b, c) ? b : (Better(a, c) ? c : a);
  return Better(a, c) ? a : (Better(b, c) ? c : b);
}

// Moves the `count` best of first[0, n) to first[0, count), 0 < count < n.
// A quickselect whose partition step has no data-dependent branch: each
// entry is written to both ends of the other array and only one end's cursor
// advances. Entries found to be among the best are settled at first[0, done).
void QuickSelectBest(Candidate* first, int64_t n, int64_t count) {
  constexpr int64_t kSmall = 24;  // below this, nth_element's insertion sort wins
  thread_local std::vector<Candidate> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  // The undecided entries live[0, size): in scratch, or in first right after the settled ones.
  Candidate* live = first;
  bool in_scratch = false;
  int64_t size = n, done = 0, want = count;
  while (want > 0 && size > want && size > kSmall) {
    Candidate* dst = in_scratch ? first + done : scratch.data();  // never overlaps live
    const Candidate pivot = Median3(live[0], live[size / 2], live[size - 1]);
    int64_t lo = 0, hi = size;
    for (int64_t i = 0; i < size; ++i) {
      const Candidate c = live[i];
      const bool better = BetterNoBranch(c, pivot);
      dst[lo] = c;
      dst[hi - 1] = c;
      lo += better;
      hi -= !better;
    }
    in_scratch = !in_scratch;
    live = dst;
    // dst[0, lo): better than the pivot; dst[lo, size): the rest, pivot included.
    if (lo > want) {
      size = lo;  // the best `want` are all among the better ones
      continue;
    }
    if (lo == 0) {
      // Nothing beats the pivot: settle it and any entries equal to it.
      int64_t equal = 0;
      for (int64_t i = 0; i < size; ++i) {
        const bool same = !BetterNoBranch(pivot, dst[i]);
        std::swap(dst[equal], dst[i]);
        equal += same;
      }
      lo = std::min(equal, want);
    }
    if (in_scratch) std::copy(dst, dst + lo, first + done);
    done += lo;
    want -= lo;
    live = dst + lo;
    size -= lo;
  }
  if (want > 0) {
    if (size > want) std::nth_element(live, live + (want - 1), live + size, BetterOrder());
    if (in_scratch) std::copy(live, live + want, first + done);
  }
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
  if (count < n) QuickSelectBest(first, n, count);
  return count;
}

int64_t SelectBestScores(const DenseKernels::RowSelect& select, const float* scores, int32_t n, int32_t count,
                         Candidate* out) {
  if (count <= 0) return 0;
  if (count >= n) {
    for (int32_t i = 0; i < n; ++i) out[i] = Candidate{scores[i], i};
    return n;
  }
  // Deal the scores round-robin into twice `count` lanes (whole vectors of
  // every ISA): each lane's maximum is a score at its own index, so the
  // count-th largest maximum is a bound that `count` scores reach, and every
  // score below it can be dropped in one pass. (Twice as many lanes as count
  // keep about 1.3x count scores on centroid scores; count lanes, 2-3x.)
  float bound = -std::numeric_limits<float>::infinity();
  const int64_t lanes = (2 * int64_t{count} + 15) / 16 * 16;
  if (lanes <= n) {
    thread_local std::vector<float> maxima;
    thread_local std::vector<Candidate> top;
    maxima.resize(lanes);
    top.resize(lanes);
    select.lane_maxima(scores, n, static_cast<int32_t>(lanes), maxima.data());
    for (int32_t l = 0; l < lanes; ++l) top[l] = Candidate{maxima[l], l};
    PartitionBest(top.data(), lanes, count);  // NaN ranks last
    float low = std::numeric_limits<float>::infinity();
    bool nan = false;  // among the `count` best lanes: keep every score
    for (int32_t l = 0; l < count; ++l) {
      low = std::min(low, top[l].score);
      nan |= top[l].score != top[l].score;
    }
    if (!nan) bound = low;
  }
  return PartitionBest(out, select.at_least(scores, n, bound, out), count);
}

void WriteTopK(std::vector<Candidate>& cands, int32_t k, int64_t* out_ids, float* out_scores) {
  const size_t keep = static_cast<size_t>(PartitionBest(cands.data(), static_cast<int64_t>(cands.size()), k));
  std::sort(cands.begin(), cands.begin() + keep, BetterOrder());
  for (int32_t i = 0; i < k; ++i) {
    const bool have = static_cast<size_t>(i) < keep;
    out_ids[i] = have ? cands[i].id : -1;
    out_scores[i] = have ? cands[i].score : -std::numeric_limits<float>::infinity();
  }
}

namespace {

// Leaves one entry per id in a buffer with `distinct` bitmaps: the best
// copy (the higher score). An id has at most two copies (a point sits in at
// most two leaves, each scanned once). Two passes over the entries mark and
// set aside the duplicated ids; a small hash table over those pairs keeps the
// better copy. The bitmaps are zero again on return.
void DropDuplicates(CandidateBuffer& b) {
  uint64_t* seen = b.distinct;
  uint64_t* twice = b.distinct + b.distinct_words;
  uint64_t any = 0;
  for (int32_t i = 0; i < b.size; ++i) {
    const uint32_t id = static_cast<uint32_t>(b.entries[i].id);
    const uint64_t bit = uint64_t{1} << (id & 63);
    const uint64_t again = seen[id >> 6] & bit;
    seen[id >> 6] |= bit;
    twice[id >> 6] |= again;
    any |= again;
  }
  if (any == 0) {
    for (int32_t i = 0; i < b.size; ++i) seen[static_cast<uint32_t>(b.entries[i].id) >> 6] = 0;
    return;
  }
  thread_local std::vector<Candidate> dups;
  dups.clear();
  int32_t kept = 0;
  for (int32_t i = 0; i < b.size; ++i) {
    const Candidate c = b.entries[i];
    const uint32_t id = static_cast<uint32_t>(c.id);
    seen[id >> 6] = 0;
    if ((twice[id >> 6] >> (id & 63)) & 1) {
      dups.push_back(c);
    } else {
      b.entries[kept++] = c;
    }
  }
  for (const Candidate& c : dups) twice[static_cast<uint32_t>(c.id) >> 6] = 0;
  // Open addressing, at most half full: slot -> index of the copy kept.
  int shift = 1;
  while ((size_t{1} << shift) < 2 * dups.size()) ++shift;
  const uint32_t mask = (uint32_t{1} << shift) - 1;
  thread_local std::vector<int32_t> slots;
  slots.assign(size_t{1} << shift, -1);
  for (const Candidate& c : dups) {
    uint32_t h = (static_cast<uint32_t>(c.id) * 0x9E3779B1u) >> (32 - shift);
    while (slots[h] >= 0 && b.entries[slots[h]].id != c.id) h = (h + 1) & mask;
    if (slots[h] < 0) {
      slots[h] = kept;
      b.entries[kept++] = c;
    } else if (c.score > b.entries[slots[h]].score) {
      b.entries[slots[h]] = c;
    }
  }
  b.size = kept;
}

}  // namespace

void MakeRoom(CandidateBuffer& b) {
  if (b.distinct != nullptr) DropDuplicates(b);
  if (b.size <= b.keep) return;
  const int64_t size = b.size;
  const int64_t kept = KeepTopBuckets(b.entries, size, b.keep);
  // KeepTopBuckets moved the kept entries to the front; entries[kept, size)
  // are stale (some are second copies of kept ones), so they must go now.
  b.size = static_cast<int32_t>(kept);
  if (kept > (size + b.keep) / 2) {  // ties or outliers: too little room made
    CompactCandidates(b);
    return;
  }
  float lo, hi;
  ScoreRange(b.entries, kept, &lo, &hi);
  b.threshold = lo;  // `kept` >= keep entries reach it
}

void CompactCandidates(CandidateBuffer& b) {
  if (b.distinct != nullptr) DropDuplicates(b);
  if (b.size <= b.keep) return;
  b.size = static_cast<int32_t>(PartitionBest(b.entries, b.size, b.keep));
  float worst = b.entries[0].score;
  for (int32_t i = 1; i < b.size; ++i) worst = b.entries[i].score < worst ? b.entries[i].score : worst;
  b.threshold = worst;
}

}  // namespace annlib
