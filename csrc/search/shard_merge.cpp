#include "shard_merge.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

struct Entry {
  float approx, exact;
  int64_t id;
};

bool BetterApprox(const Entry& a, const Entry& b) {
  return a.approx > b.approx || (a.approx == b.approx && a.id < b.id);
}

bool BetterExact(const Entry& a, const Entry& b) {
  return a.exact > b.exact || (a.exact == b.exact && a.id < b.id);
}

}  // namespace

void MergeCandidates(int64_t nq, int64_t width, const int64_t* ids, const float* approx, const float* exact,
                     int64_t wanted, int32_t k, int num_threads, int64_t* out_ids, float* out_scores) {
  ParallelFor(nq, ResolveThreads(num_threads), [&](int64_t q) {
    std::vector<Entry> entries;
    entries.reserve(width);
    for (int64_t j = q * width; j < (q + 1) * width; ++j)
      if (ids[j] >= 0) entries.push_back(Entry{approx[j], exact[j], ids[j]});
    // One entry per id, its best approximate score first.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.id < b.id || (a.id == b.id && a.approx > b.approx);
    });
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const Entry& a, const Entry& b) { return a.id == b.id; }),
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
