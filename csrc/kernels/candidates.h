// Candidate selection for the LUT16 scan: an unordered buffer with a rising
// threshold, cheaper per survivor than a heap (an append instead of a sift).
//
// The buffer accepts every score >= threshold. When it is full, MakeRoom
// drops all but the entries of the top score buckets (the `keep` best and a
// few more) and raises the threshold to the worst one kept: an entry below it
// can never make the final `keep`. That costs O(capacity) once per about
// (capacity - keep) appends. A final CompactCandidates keeps exactly the
// best min(keep, seen) entries (higher score first, then smaller id, as
// exact ground truth breaks ties), in no particular order: the same set an
// exact top-`keep` heap would hold.
//
// Plain structs and out-of-line functions only: this header is included by
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

// Makes room in a buffer, more cheaply than CompactCandidates: keeps the
// entries of the top score buckets that hold at least `keep` of them (the
// `keep` best and a few near the cut) and raises the threshold to the worst
// one kept. Scans call it when the buffer fills; CompactCandidates after the
// last append still gives the exact best `keep`.
void MakeRoom(CandidateBuffer& buffer);

}  // namespace annlib
