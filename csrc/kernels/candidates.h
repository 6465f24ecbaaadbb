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
// With SOAR a point is stored in two leaves, so its id can be appended twice.
// A buffer given `distinct` bitmaps drops all but the best copy of each id
// before it keeps anything: every compaction then keeps the `keep` best
// distinct ids, and the threshold is the worst of those — the same final set
// as keeping the best 2 * keep entries and deduplicating them afterwards
// (each id has at most two copies), at half the buffer and a tighter
// threshold.
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
  // nullptr, or two bitmaps over ids, [2 * distinct_words] (seen, then seen
  // twice): all zero, and zero again after every compaction that uses them.
  uint64_t* distinct = nullptr;
  int64_t distinct_words = 0;
};

// Capacity for `keep` entries: compactions every >= keep appends (at most
// every 4M appends for huge keeps, so memory stays about keep's). Computed in
// 64 bits; callers bound keep by the points an index holds, and a capacity
// that does not fit the int32 fields is refused.
inline int64_t CandidateCapacity(int64_t keep) {
  const int64_t room = 3 * keep < (int64_t{1} << 22) ? 3 * keep : (int64_t{1} << 22);
  return keep + room + 64;
}

// Keeps the `keep` best entries (distinct ids, with `distinct`) and, once
// that many exist, raises the threshold to the worst of them. Defined in
// search/topk.cpp (baseline code).
void CompactCandidates(CandidateBuffer& buffer);

// Makes room in a buffer, more cheaply than CompactCandidates: keeps the
// entries of the top score buckets that hold at least `keep` of them (the
// `keep` best and a few near the cut) and raises the threshold to the worst
// one kept. Scans call it when the buffer fills; CompactCandidates after the
// last append still gives the exact best `keep`.
void MakeRoom(CandidateBuffer& buffer);

}  // namespace annlib
