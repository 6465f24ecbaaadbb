// Merging the shards' answers of a sharded search (annlib/distributed) into
// the results one index holding all of their points would return.
//
// Each shard answers with its `wanted` best distinct candidates by
// approximate (AH) score, each with its reordered score
// (PartitionedIndex::SearchCandidates). One index keeps the `wanted` best
// distinct candidates over all the leaves it scans, then returns the `k` best
// of them by reordered score; every one of those is among its shard's
// `wanted` best, so merging gives the same set: per query, each id once with
// its best approximate score (SOAR copies may sit on two shards), the
// `wanted` best of those, their `k` best by reordered score. Ties go to the
// smaller key.
#pragma once
#include <cstdint>

namespace annlib {

// keys/ids/approx/exact [nq][width] (key -1: none) -> out_ids/out_scores
// [nq][k], best first, reordered raw scores, padded with -1 / -inf. A key
// names one point and orders ties: a sharded index passes each point's place
// in the order one index would store them, so that ties go where one index
// sends them; ids may be nullptr (the keys are the ids). distinct: the caller
// knows that no key repeats within a query (one shard's own answer), which
// skips the deduplication.
void MergeCandidates(int64_t nq, int64_t width, const int64_t* keys, const int64_t* ids, const float* approx,
                     const float* exact, int64_t wanted, int32_t k, int num_threads, int64_t* out_ids,
                     float* out_scores, bool distinct = false);

}  // namespace annlib
