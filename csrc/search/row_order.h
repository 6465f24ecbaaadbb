// Exact reordering of a batch of queries' candidates in the order of their
// rows instead of query by query.
//
// Query by query, every candidate's row is a random read from the reorder
// copy (a row of 1.5 KB at d=384 costs ~200 ns from memory). A batch of
// queries whose candidates together cover a good share of the rows reads them
// better by row: sorted, the reads sweep the copy front to back, which the
// hardware prefetches like a sequential scan, and a row that several queries
// want is read once while it is in cache. Each (query, row) product is the same
// kernel call on the same values as query by query, so the scores are
// bit-identical (tests/test_row_order.py compares the two orders).
#pragma once
#include <cstdint>

#include "../kernels/candidates.h"
#include "../kernels/dense_scan.h"

namespace annlib {

// Whether `pairs` (query, candidate row) products over a copy of `num_rows`
// rows are cheaper in row order: when they touch a good share of the rows.
// (Sparser, the reads stay random, and each pair also fetches its query's
// row from a cache level further out than one query's loop does.)
bool RowOrderPays(int64_t pairs, int64_t num_rows);

// The sum of a query's entries, as int8 reorder copies' scores take it
// (RescoreArgs::query_sum): added in one order by every path that rescores,
// so that their scores agree bit for bit.
float QuerySum(const float* query, int32_t dim);

// The calling thread keeps its buffers for the next batch up to this many
// pairs (or padded query values); a bigger batch gives them back.
constexpr int64_t kRowOrderKeptPairs = int64_t{1} << 20;

// reorder: the reorder copy's arguments (type, rows, stride, bias, scale,
// offset); its query, ids, count and out are ignored. queries [nq][dim];
// candidates [nq][stride], of which the first counts[i] of query i are used:
// their ids are rows of the copy, and their scores become the exact ones.
// nq * stride must fit an int32.
void RescoreInRowOrder(const DenseKernels& dense, const RescoreArgs& reorder, int64_t num_rows, int32_t dim,
                       const float* queries, int64_t nq, Candidate* candidates, int64_t stride,
                       const int32_t* counts, int num_threads);

}  // namespace annlib
