#include "row_order.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "../util/parallel.h"

namespace annlib {

bool RowOrderPays(int64_t pairs, int64_t num_rows) {
  // Measured on the dev sets' reorder copies (100k-150k rows of 256 B-1.5 KB):
  // 0.94x the time of query order at half as many pairs as rows, 0.72x at 4x;
  // about even at a quarter to 0.4x. (Small copies are in cache either way.)
  return 2 * pairs >= num_rows;
}

void RescoreInRowOrder(const DenseKernels& dense, const RescoreArgs& reorder, int64_t num_rows, int32_t dim,
                       const float* queries, int64_t nq, Candidate* candidates, int64_t stride,
                       const int32_t* counts, int num_threads) {
  if (nq * stride > INT32_MAX) throw std::invalid_argument("too many candidates to reorder in row order");
  // Kept by the calling thread between calls: fresh pages for every batch
  // cost ~5% of it in page faults.
  // (The worker threads below reach them through pointers: a thread_local
  // name would mean each thread's own.)
  thread_local std::vector<int32_t> next, row, query, at;
  thread_local std::vector<float> padded, sums, scores;
  // Counting sort of the (query, candidate) pairs by row.
  next.assign(num_rows + 1, 0);
  int64_t pairs = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const Candidate* c = candidates + i * stride;
    for (int32_t j = 0; j < counts[i]; ++j) ++next[c[j].id + 1];
    pairs += counts[i];
  }
  for (int64_t r = 0; r < num_rows; ++r) next[r + 1] += next[r];
  row.resize(pairs);
  query.resize(pairs);
  at.resize(pairs);
  for (int64_t i = 0; i < nq; ++i) {
    const Candidate* c = candidates + i * stride;
    for (int32_t j = 0; j < counts[i]; ++j) {
      const int32_t pos = next[c[j].id]++;
      row[pos] = c[j].id;
      query[pos] = static_cast<int32_t>(i);
      at[pos] = static_cast<int32_t>(i * stride + j);
    }
  }
  // The queries as the kernel takes them, zero padded to the rows' stride,
  // and their sums (int8 copies) added in the same order as one query's.
  const int64_t row_stride = reorder.stride;
  padded.assign(nq * row_stride, 0.0f);
  sums.assign(nq, 0.0f);
  for (int64_t i = 0; i < nq; ++i) {
    const float* q = queries + i * dim;
    std::copy(q, q + dim, padded.begin() + i * row_stride);
    for (int32_t t = 0; t < dim; ++t) sums[i] += q[t];
  }
  // Contiguous ranges of the sorted pairs: each thread sweeps part of the copy.
  scores.resize(pairs);
  const int threads = ResolveThreads(num_threads);
  const int64_t parts = std::min<int64_t>(pairs, int64_t{4} * threads);
  const int32_t *rows_by_pair = row.data(), *query_by_pair = query.data(), *at_by_pair = at.data();
  const float *padded_queries = padded.data(), *query_sums = sums.data();
  float* pair_scores = scores.data();
  ParallelFor(parts, threads, [&](int64_t part) {
    const int64_t begin = pairs * part / parts, end = pairs * (part + 1) / parts;
    if (begin == end) return;
    RescoreArgs r = reorder;
    r.ids = rows_by_pair + begin;
    r.query_of = query_by_pair + begin;
    r.queries = padded_queries;
    r.query_sums = query_sums;
    r.count = static_cast<int32_t>(end - begin);
    r.out = pair_scores + begin;
    dense.rescore(r);
    for (int64_t pos = begin; pos < end; ++pos) candidates[at_by_pair[pos]].score = pair_scores[pos];
  });
  if (pairs > kRowOrderKeptPairs || nq * row_stride > kRowOrderKeptPairs) {
    // A big batch's buffers go back (the next call allocates again): what a
    // thread keeps stays within a few tens of MB.
    for (auto* buffer : {&next, &row, &query, &at}) std::vector<int32_t>().swap(*buffer);
    for (auto* buffer : {&padded, &sums, &scores}) std::vector<float>().swap(*buffer);
  }
}

}  // namespace annlib
