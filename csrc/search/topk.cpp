#include "topk.h"

#include <algorithm>
#include <limits>

namespace annlib {

void WriteTopK(std::vector<Candidate>& cands, int32_t k, int64_t* out_ids, float* out_scores) {
  const size_t keep = std::min<size_t>(k, cands.size());
  std::partial_sort(cands.begin(), cands.begin() + keep, cands.end(), Better);
  for (int32_t i = 0; i < k; ++i) {
    const bool have = static_cast<size_t>(i) < keep;
    out_ids[i] = have ? cands[i].id : -1;
    out_scores[i] = have ? cands[i].score : -std::numeric_limits<float>::infinity();
  }
}

}  // namespace annlib
