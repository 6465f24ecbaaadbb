#include "row_order.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

// Pairs are first dealt into buckets of this many consecutive rows (a
// power of two), then each bucket is sorted by row and rescored by one thread.
constexpr int kBucketShift = 8;

}  // namespace

float QuerySum(const float* query, int32_t dim) {
  float sum = 0.0f;
  for (int32_t t = 0; t < dim; ++t) sum += query[t];
  return sum;
}

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
  const int threads = ResolveThreads(num_threads);
  // Kept by the calling thread between calls: fresh pages for every batch
  // cost ~5% of it in page faults. (The workers below reach them through
  // pointers: a thread_local name would mean each thread's own.)
  thread_local std::vector<int32_t> dealt, sorted, bucket_counts;
  thread_local std::vector<float> padded, sums, scores;
  int64_t pairs = 0;
  for (int64_t i = 0; i < nq; ++i) pairs += counts[i];
  // A pair: its row, and `at`, its candidate's index in `candidates` (its
  // query is at / stride); sorted, also its query, as the kernel takes it.
  dealt.resize(2 * pairs);
  sorted.resize(3 * pairs);
  scores.resize(pairs);
  int32_t* const dealt_row = dealt.data();
  int32_t* const dealt_at = dealt.data() + pairs;
  int32_t* const sorted_row = sorted.data();
  int32_t* const sorted_at = sorted.data() + pairs;
  int32_t* const sorted_query = sorted.data() + 2 * pairs;

  // 1. Deal the pairs into buckets of rows, in parallel over ranges of queries:
  //    each range counts its pairs per bucket, then writes them from its own
  //    offsets, so every bucket's pairs come out in query order.
  const int64_t buckets = (num_rows >> kBucketShift) + 1;
  const int64_t ranges = std::min<int64_t>(nq, threads);
  bucket_counts.assign(ranges * buckets, 0);
  int32_t* const offsets = bucket_counts.data();  // [ranges][buckets], then [bucket][range] prefix sums
  auto range_of = [&](int64_t r) { return std::make_pair(nq * r / ranges, nq * (r + 1) / ranges); };
  ParallelFor(ranges, threads, [&](int64_t r) {
    int32_t* mine = offsets + r * buckets;
    const auto [first, last] = range_of(r);
    for (int64_t i = first; i < last; ++i)
      for (int32_t j = 0; j < counts[i]; ++j) ++mine[candidates[i * stride + j].id >> kBucketShift];
  });
  std::vector<int32_t> bucket_start(buckets + 1, 0);
  {
    int32_t total = 0;
    for (int64_t b = 0; b < buckets; ++b) {
      bucket_start[b] = total;
      for (int64_t r = 0; r < ranges; ++r) {
        const int32_t n = offsets[r * buckets + b];
        offsets[r * buckets + b] = total;
        total += n;
      }
    }
    bucket_start[buckets] = total;
  }
  ParallelFor(ranges, threads, [&](int64_t r) {
    int32_t* next = offsets + r * buckets;
    const auto [first, last] = range_of(r);
    for (int64_t i = first; i < last; ++i) {
      for (int32_t j = 0; j < counts[i]; ++j) {
        const int32_t row = candidates[i * stride + j].id;
        const int32_t pos = next[row >> kBucketShift]++;
        dealt_row[pos] = row;
        dealt_at[pos] = static_cast<int32_t>(i * stride + j);
      }
    }
  });

  // The queries as the kernel takes them, zero padded to the rows' stride,
  // and their sums (int8 copies) added in the same order as one query's.
  const int64_t row_stride = reorder.stride;
  padded.resize(nq * row_stride);
  sums.resize(nq);
  float* const padded_queries = padded.data();
  float* const query_sums = sums.data();
  ParallelFor((nq + 63) / 64, threads, [&](int64_t block) {
    for (int64_t i = block * 64; i < std::min(nq, (block + 1) * 64); ++i) {
      const float* q = queries + i * dim;
      float* out = padded_queries + i * row_stride;
      std::copy(q, q + dim, out);
      std::fill(out + dim, out + row_stride, 0.0f);
      query_sums[i] = QuerySum(q, dim);
    }
  });

  // 2. Each bucket: its pairs sorted by row (a counting sort over its rows),
  //    rescored in that order, and the scores written back. Buckets go to the
  //    threads in row order, so each sweeps its share of the copy forwards.
  float* const pair_scores = scores.data();
  ParallelFor(buckets, threads, [&](int64_t b) {
    const int32_t begin = bucket_start[b], end = bucket_start[b + 1];
    if (begin == end) return;
    const int32_t base = static_cast<int32_t>(b << kBucketShift);
    int32_t next[(1 << kBucketShift) + 1] = {};
    for (int32_t p = begin; p < end; ++p) ++next[dealt_row[p] - base + 1];
    for (int i = 0; i < (1 << kBucketShift); ++i) next[i + 1] += next[i];
    for (int32_t p = begin; p < end; ++p) {
      const int32_t pos = begin + next[dealt_row[p] - base]++;
      sorted_row[pos] = dealt_row[p];
      sorted_at[pos] = dealt_at[p];
      sorted_query[pos] = static_cast<int32_t>(dealt_at[p] / stride);
    }
    RescoreArgs r = reorder;
    r.ids = sorted_row + begin;
    r.query_of = sorted_query + begin;
    r.queries = padded_queries;
    r.query_sums = query_sums;
    r.count = end - begin;
    r.out = pair_scores + begin;
    dense.rescore(r);
    for (int32_t p = begin; p < end; ++p) candidates[sorted_at[p]].score = pair_scores[p];
  });

  if (pairs > kRowOrderKeptPairs || nq * row_stride > kRowOrderKeptPairs) {
    // A big batch's buffers go back (the next call allocates again): what a
    // thread keeps stays within a few tens of MB.
    for (auto* buffer : {&dealt, &sorted, &bucket_counts}) std::vector<int32_t>().swap(*buffer);
    for (auto* buffer : {&padded, &sums, &scores}) std::vector<float>().swap(*buffer);
  }
}

}  // namespace annlib
