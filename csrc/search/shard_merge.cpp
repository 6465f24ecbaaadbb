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

}  // namespace

void MergeCandidates(int64_t nq, int64_t width, const int64_t* keys, const int64_t* ids, const float* approx,
                     const float* exact, int64_t wanted, int32_t k, int num_threads, int64_t* out_ids,
                     float* out_scores) {
  ParallelFor(nq, ResolveThreads(num_threads), [&](int64_t q) {
    std::vector<Entry> entries;
    entries.reserve(width);
    for (int64_t j = q * width; j < (q + 1) * width; ++j)
      if (keys[j] >= 0) entries.push_back(Entry{approx[j], exact[j], keys[j], ids != nullptr ? ids[j] : keys[j]});
    // One entry per point, its best approximate score first.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.key < b.key || (a.key == b.key && a.approx > b.approx);
    });
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const Entry& a, const Entry& b) { return a.key == b.key; }),
                  entries.end());
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
