// Final ordering of selected candidates, shared by every search driver:
// best score first, ties broken by the smaller id (as exact ground truth does).
#pragma once
#include <cstdint>
#include <vector>

namespace annlib {

struct Candidate {
  float score;
  int32_t id;
};

inline bool Better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Writes the k best of `cands` (reordered in place) to out_ids/out_scores,
// padding with id -1 and score -inf when there are fewer than k.
void WriteTopK(std::vector<Candidate>& cands, int32_t k, int64_t* out_ids, float* out_scores);

}  // namespace annlib
