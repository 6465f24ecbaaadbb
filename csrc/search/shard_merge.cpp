#include "shard_merge.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

struct Entry {
  float approx, exact;
  int64_t key, id;
};

bool BetterApprox(const Entry& a, const Entry& b) {
  return a.approx > b.approx || (a.approx == b.approx && a.key < b.key);
}

bool BetterExact(const Entry& a, const Entry& b) {
  return a.exact > b.exact || (a.exact == b.exact && a.key < b.key);
}

// Keeps one entry per key, the one with the best approximate score (a point's copies on
// two shards carry the same reordered score), in a small open-addressing table: linear in
// the entries, where sorting them by key was the merge's main cost.
void KeepBestPerKey(std::vector<Entry>& entries, std::vector<int32_t>& table) {
  const size_t n = entries.size();
  int bits = 4;
  while ((size_t{1} << bits) < 2 * n) ++bits;
  const size_t size = size_t{1} << bits;
  table.assign(size, -1);
  const int shift = 64 - bits;
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const Entry e = entries[i];
    size_t slot = static_cast<size_t>((static_cast<uint64_t>(e.key) * 0x9E3779B97F4A7C15ull) >> shift);
    while (true) {
      const int32_t at = table[slot];
      if (at < 0) {
        table[slot] = static_cast<int32_t>(kept);
        entries[kept++] = e;
        break;
      }
      if (entries[at].key == e.key) {
        if (e.approx > entries[at].approx) entries[at] = e;
        break;
      }
      slot = (slot + 1) & (size - 1);
    }
  }
  entries.resize(kept);
}

}  // namespace

void MergeCandidates(int64_t nq, int64_t width, const int64_t* keys, const int64_t* ids, const float* approx,
                     const float* exact, int64_t wanted, int32_t k, int num_threads, int64_t* out_ids,
                     float* out_scores, bool distinct) {
  ParallelFor(nq, ResolveThreads(num_threads), [&](int64_t q) {
    std::vector<Entry> entries;
    std::vector<int32_t> table;
    entries.reserve(width);
    for (int64_t j = q * width; j < (q + 1) * width; ++j)
      if (keys[j] >= 0) entries.push_back(Entry{approx[j], exact[j], keys[j], ids != nullptr ? ids[j] : keys[j]});
    if (!distinct) KeepBestPerKey(entries, table);
    if (static_cast<int64_t>(entries.size()) > wanted) {
      std::nth_element(entries.begin(), entries.begin() + wanted, entries.end(), BetterApprox);
      entries.resize(wanted);
    }
    const size_t keep = std::min<size_t>(entries.size(), static_cast<size_t>(k));
    std::partial_sort(entries.begin(), entries.begin() + keep, entries.end(), BetterExact);
    for (int32_t i = 0; i < k; ++i) {
      const bool have = static_cast<size_t>(i) < keep;
      out_ids[q * k + i] = have ? entries[i].id : -1;
      out_scores[q * k + i] = have ? entries[i].exact : -std::numeric_limits<float>::infinity();
    }
  });
}

}  // namespace annlib
