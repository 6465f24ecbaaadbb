// Final ordering of selected candidates, shared by every search driver:
// best score first, ties broken by the smaller id (as exact ground truth does).
#pragma once
#include <cstdint>
#include <vector>

#include "../kernels/candidates.h"  // Candidate
#include "../kernels/dense_scan.h"  // DenseKernels::RowSelect

namespace annlib {

inline bool Better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Better as a function object: the STL algorithms inline it (a function
// pointer would be called per comparison).
struct BetterOrder {
  bool operator()(const Candidate& a, const Candidate& b) const { return Better(a, b); }
};

// Appends (score, id) to a buffer when it reaches the threshold, making room
// first when the buffer is full (kernels/candidates.h). Baseline drivers only:
// the LUT16 kernels have their own copy (Lut16Select), as ISA units must not
// share inline code with baseline ones.
inline void OfferCandidate(CandidateBuffer& buf, float score, int32_t id) {
  if (score < buf.threshold) return;
  if (buf.size == buf.capacity) {
    MakeRoom(buf);
    if (score < buf.threshold) return;
  }
  buf.entries[buf.size++] = Candidate{score, id};
}

// Moves the `count` best of first[0, n) (BetterOrder) to first[0, count), in
// no particular order; the other entries are overwritten. Returns
// min(count, n). Histogram passes narrow a large range, then a quickselect
// with a branch-free partition finishes: a few linear passes instead of a
// mispredicted branch per comparison.
int64_t PartitionBest(Candidate* first, int64_t n, int64_t count);

// The `count` best of scores[0, n) as candidates (id = index) in out[0, count),
// in no particular order; out needs room for n. Returns min(count, n). Two
// vector passes (the ISA's `select`) find a bound that `count` scores are
// known to reach and keep the scores at or above it, so choosing leaves from
// a query's centroid scores costs little more than reading them.
int64_t SelectBestScores(const DenseKernels::RowSelect& select, const float* scores, int32_t n, int32_t count,
                         Candidate* out);

// Writes the k best of `cands` (reordered in place) to out_ids/out_scores,
// padding with id -1 and score -inf when there are fewer than k.
void WriteTopK(std::vector<Candidate>& cands, int32_t k, int64_t* out_ids, float* out_scores);

}  // namespace annlib
