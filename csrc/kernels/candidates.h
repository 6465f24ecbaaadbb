// Candidate selection for the LUT16 scan: an unordered buffer with a rising
// threshold, cheaper per survivor than a heap (an append instead of a sift).
//
// The buffer accepts every score >= threshold. When it is full,
// CompactCandidates keeps its `keep` best entries (higher score first, then
// smaller id, as exact ground truth breaks ties) and raises the threshold to
// the keep-th best score: an entry below it can never make the final `keep`.
// The compaction is O(capacity) once per (capacity - keep) appends. After a
// final CompactCandidates the buffer holds exactly the best min(keep, seen)
// entries, in no particular order: the same set an exact top-`keep` heap
// would hold.
//
// Plain structs and an out-of-line function only: this header is included by
// ISA translation units, which must not share inline code with baseline ones.
#pragma once
#include <cstdint>

namespace annlib {

struct Candidate {
  float score;
  int32_t id;
};

struct CandidateBuffer {
  Candidate* entries;  // [capacity]
  int32_t size;
  int32_t capacity;    // > keep
  int32_t keep;
  float threshold;     // -inf until `keep` entries were kept by a compaction
};

// Smallest sensible capacity for `keep` entries: compactions every >= keep appends.
inline int32_t CandidateCapacity(int32_t keep) { return 4 * keep + 64; }

// Keeps the `keep` best entries and, once that many exist, raises the
// threshold to the worst of them. Defined in search/topk.cpp (baseline code).
void CompactCandidates(CandidateBuffer& buffer);

}  // namespace annlib
