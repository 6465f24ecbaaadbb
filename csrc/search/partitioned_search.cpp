#include "partitioned_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "../quantization/lut16_tables.h"  // PaddedBlocks
#include "../util/parallel.h"
#include "topk.h"

namespace annlib {
namespace {

// Queries whose leaves are chosen together by one batched centroid scan.
constexpr int64_t kQueryChunk = 512;
// Queries handed to a worker at a time (they share one scratch allocation).
constexpr int64_t kQueriesPerTask = 8;

using Clock = std::chrono::steady_clock;

double NanosSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

struct Scratch {
  std::vector<float> lut;          // LUT build scratch, [num_blocks * 17]
  std::vector<uint8_t> table;      // [PaddedBlocks][16]
  std::vector<float> heap_scores;  // [capacity]
  std::vector<int32_t> heap_ids;
  std::vector<float> query_row;    // [row_stride]
  std::vector<float> rescored;
  std::vector<Candidate> cands;
  std::vector<Candidate> dups;
  std::vector<uint64_t> seen, twice;  // SOAR dedup bitmaps over ids, cleared after use

  Scratch(const PartitionedView& v, int32_t capacity)
      : lut(int64_t{v.num_blocks} * 17),
        table(int64_t{PaddedBlocks(v.num_blocks)} * 16),
        heap_scores(capacity),
        heap_ids(capacity),
        query_row(v.rows != nullptr ? v.row_stride : 0, 0.0f),
        rescored(capacity) {
    cands.reserve(capacity);
    if (v.spilled) {
      seen.assign((v.num_points + 63) / 64, 0);
      twice.assign(seen.size(), 0);
    }
  }
};

// Heap entries a query keeps: the candidates it wants (pre_reorder, or k
// without reordering), times the overretrieve factor when points are spilled.
// A point is stored at most twice, so 2k entries always hold k distinct ids:
// k results come back whenever the leaves searched hold k points.
int32_t HeapCapacity(const PartitionedView& v, const PartitionedParams& p) {
  const int32_t wanted = v.rows != nullptr ? p.pre_reorder : p.k;
  if (!v.spilled) return wanted;
  const double cap = std::max(std::ceil(double{wanted} * v.overretrieve_factor), 2.0 * p.k);
  return static_cast<int32_t>(std::min(cap, 2147483647.0));
}

// Moves the heap's entries into s.cands, the best copy of each id only, then
// keeps the `wanted` best by approximate score.
void Deduplicate(const SelectState& heap, int32_t wanted, Scratch& s) {
  auto test_and_set = [](std::vector<uint64_t>& bits, int32_t id) {
    uint64_t& word = bits[static_cast<uint64_t>(id) >> 6];
    const uint64_t bit = uint64_t{1} << (id & 63);
    const bool was = (word & bit) != 0;
    word |= bit;
    return was;
  };
  for (int32_t i = 0; i < heap.size; ++i)
    if (test_and_set(s.seen, heap.ids[i])) test_and_set(s.twice, heap.ids[i]);
  s.dups.clear();
  for (int32_t i = 0; i < heap.size; ++i) {
    const int32_t id = heap.ids[i];
    const Candidate c{heap.scores[i], id};
    if ((s.twice[static_cast<uint64_t>(id) >> 6] >> (id & 63)) & 1) {
      s.dups.push_back(c);
    } else {
      s.cands.push_back(c);
    }
  }
  for (int32_t i = 0; i < heap.size; ++i) {
    const uint64_t word = static_cast<uint64_t>(heap.ids[i]) >> 6;
    s.seen[word] = 0;
    s.twice[word] = 0;
  }
  // A duplicate's copies sit next to each other once sorted by id, best first.
  std::sort(s.dups.begin(), s.dups.end(), [](const Candidate& a, const Candidate& b) {
    return a.id < b.id || (a.id == b.id && a.score > b.score);
  });
  for (size_t i = 0; i < s.dups.size(); ++i)
    if (i == 0 || s.dups[i].id != s.dups[i - 1].id) s.cands.push_back(s.dups[i]);
  if (static_cast<int64_t>(s.cands.size()) > wanted) {
    std::nth_element(s.cands.begin(), s.cands.begin() + wanted, s.cands.end(), Better);
    s.cands.resize(wanted);
  }
}

void SearchOne(const PartitionedView& v, const PartitionedKernels& kernels, const float* query,
               const int64_t* leaf_ids, const float* leaf_scores, const PartitionedParams& p, Scratch& s,
               int64_t* out_ids, float* out_scores, StageTimes* times) {
  const bool reorder = v.rows != nullptr;
  const int32_t capacity = HeapCapacity(v, p);
  Clock::time_point t0;
  if (times) t0 = Clock::now();

  Lut16Args args;
  Lut16BuildArgs build{query, v.lut_centers, v.num_blocks, v.dims_per_block, s.lut.data(),
                       s.table.data(), &args.inv_scale, &args.base};
  kernels.build(build);
  const float lut_base = args.base;
  if (times) {
    times->lut += NanosSince(t0);
    t0 = Clock::now();
  }

  SelectState state{s.heap_scores.data(), s.heap_ids.data(), 0};
  args.num_blocks = PaddedBlocks(v.num_blocks);
  args.lut = s.table.data();
  args.k = capacity;
  args.state = &state;
  const int64_t group_bytes = int64_t{args.num_blocks} * 16;
  for (int32_t i = 0; i < p.leaves; ++i) {
    const int64_t leaf = leaf_ids[i];
    if (leaf < 0) break;  // fewer leaves than asked (cannot happen when leaves <= num_leaves)
    const int64_t begin = v.leaf_starts[leaf], end = v.leaf_starts[leaf + 1];
    if (end == begin) continue;
    args.codes = v.codes + begin / kLut16Group * group_bytes;
    args.num_points = end - begin;
    args.ids = v.slot_ids + begin;
    args.point_bias = v.slot_bias != nullptr ? v.slot_bias + begin : nullptr;
    args.base = lut_base + leaf_scores[i];  // the leaf center's score, exact
    kernels.scan(args);
  }
  if (times) {
    times->scan += NanosSince(t0);
    t0 = Clock::now();
  }

  s.cands.clear();
  if (v.spilled) {
    Deduplicate(state, reorder ? p.pre_reorder : p.k, s);
  } else {
    for (int32_t i = 0; i < state.size; ++i) s.cands.push_back({s.heap_scores[i], s.heap_ids[i]});
  }
  if (reorder) {
    std::copy(query, query + v.dim, s.query_row.begin());
    float query_sum = 0.0f;
    for (int32_t t = 0; t < v.dim; ++t) query_sum += query[t];
    const int32_t count = static_cast<int32_t>(s.cands.size());
    for (int32_t i = 0; i < count; ++i) s.heap_ids[i] = s.cands[i].id;
    RescoreArgs r;
    r.type = v.reorder_type;
    r.rows = v.rows;
    r.stride = v.row_stride;
    r.bias = v.row_bias;
    r.scale = v.row_scale;
    r.offset = v.row_offset;
    r.query = s.query_row.data();
    r.query_sum = query_sum;
    r.ids = s.heap_ids.data();
    r.count = count;
    r.out = s.rescored.data();
    kernels.dense->rescore(r);
    for (int32_t i = 0; i < count; ++i) s.cands[i].score = s.rescored[i];
  }
  WriteTopK(s.cands, p.k, out_ids, out_scores);
  if (times) times->reorder += NanosSince(t0);
}

}  // namespace

void PartitionedSearch(const PartitionedView& v, const PartitionedKernels& kernels,
                       const float* queries, int64_t nq, const PartitionedParams& p, int num_threads,
                       int64_t* out_ids, float* out_scores, StageTimes* times) {
  if (p.leaves < 1 || p.leaves > v.num_leaves()) throw std::invalid_argument("leaves must be in [1, num_leaves]");
  if (p.k < 1) throw std::invalid_argument("k must be positive");
  if (v.rows != nullptr && p.pre_reorder < p.k) throw std::invalid_argument("pre_reorder must be >= k");
  const int threads = ResolveThreads(num_threads);
  const int32_t capacity = HeapCapacity(v, p);
  const Clock::time_point start = Clock::now();
  std::vector<int64_t> leaf_ids;
  std::vector<float> leaf_scores;
  // Stage times are only kept for single-threaded calls (a sum over threads
  // would not be a wall-clock breakdown).
  StageTimes* stage = threads == 1 ? times : nullptr;
  for (int64_t q0 = 0; q0 < nq; q0 += kQueryChunk) {
    const int64_t m = std::min(kQueryChunk, nq - q0);
    leaf_ids.resize(m * p.leaves);
    leaf_scores.resize(m * p.leaves);
    Clock::time_point t0 = Clock::now();
    DenseSearch(v.centroids, *kernels.dense, queries + q0 * v.dim, m, p.leaves, 0, threads, leaf_ids.data(),
                leaf_scores.data());
    if (stage) stage->centroids += NanosSince(t0);
    const int64_t tasks = (m + kQueriesPerTask - 1) / kQueriesPerTask;
    ParallelFor(tasks, threads, [&](int64_t task) {
      Scratch s(v, capacity);
      const int64_t end = std::min(m, (task + 1) * kQueriesPerTask);
      for (int64_t i = task * kQueriesPerTask; i < end; ++i) {
        const int64_t q = q0 + i;
        SearchOne(v, kernels, queries + q * v.dim, leaf_ids.data() + i * p.leaves,
                  leaf_scores.data() + i * p.leaves, p, s, out_ids + q * p.k, out_scores + q * p.k, stage);
      }
    });
  }
  if (times) times->total += NanosSince(start);
}

}  // namespace annlib
