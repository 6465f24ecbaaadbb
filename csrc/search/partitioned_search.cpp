#include "partitioned_search.h"

#include "../util/portable.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../quantization/lut16_tables.h"  // PaddedBlocks
#include "../util/parallel.h"
#include "row_order.h"
#include "topk.h"

namespace annlib {
namespace {

// Queries whose centroid scores are computed together by one GEMM-shaped
// pass on the query-at-a-time path and in ChooseLeaves, at most this many
// score floats at a time (32 MB).
constexpr int64_t kQueryChunk = 512;
constexpr int64_t kMaxChunkScores = int64_t{8} << 20;
// Queries handed to a worker at a time (they share one scratch allocation).
constexpr int64_t kQueriesPerTask = 8;
// Batches of at least this many queries are scanned leaf-major, one block of
// queries per task: blocks of about kLeafMajorBlock queries, or more where
// that many would probe their leaves fewer than kProbesPerLeaf times each
// (LeafMajorBlock). A block scores its centroids kScoreChunk queries at a time.
constexpr int64_t kLeafMajorMinQueries = 16;
constexpr int64_t kLeafMajorBlock = 256;
constexpr int64_t kProbesPerLeaf = 8;
constexpr int64_t kScoreChunk = 64;
// A leaf-major block holds every query's candidate buffer at once: blocks
// shrink to stay within this many bytes of buffers, and below
// kLeafMajorMinQueries queries (huge pre_reorder requests) the batch is
// searched a query at a time instead.
constexpr int64_t kLeafMajorBufferBytes = int64_t{64} << 20;
// A batch whose candidates are reordered in row order (row_order.h) is taken
// this many queries at a time, or fewer to stay within kRowOrderMaxPairs
// candidates: more queries share more rows.
constexpr int64_t kRowOrderChunk = 4096;
constexpr int64_t kRowOrderMaxPairs = int64_t{1} << 21;

using Clock = std::chrono::steady_clock;

double NanosSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

// Entries of a candidate buffer that keeps `keep` (kernels/candidates.h).
int32_t BufferSize(int32_t keep) {
  const int64_t size = CandidateCapacity(keep);
  if (size > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("pre_reorder_num_neighbors is too large for the candidate buffer");
  return static_cast<int32_t>(size);
}

// A thread's working memory for one query at a time. Each thread keeps its
// own between calls (ThreadScratch: the pool's threads live on), so a single
// query allocates nothing; Prepare() fits it to the index and request.
struct Scratch {
  std::vector<float> lut;          // LUT build scratch, [num_blocks * 17]
  std::vector<uint8_t> table;      // [PaddedBlocks][16]
  std::vector<Candidate> found;    // the scan's candidate buffer
  std::vector<int32_t> rescore_ids;
  std::vector<float> query_row;    // [row_stride], zero-padded past dim
  std::vector<float> rescored;
  std::vector<Candidate> cands;
  // SOAR: the candidate buffers' `distinct` bitmaps over rows (seen, twice),
  // all zero between compactions; `dirty` while a scan is under way, so one
  // stopped half-way (an exception) gets them zeroed again.
  std::vector<uint64_t> distinct;
  bool dirty = false;
  std::vector<float> centroid_scores;  // a leaf-major block's, [kScoreChunk][stride]
  std::vector<Candidate> leaves;       // leaf selection scratch, [num_leaves]
  std::vector<Candidate> chosen;       // the chosen leaves, best first
  std::vector<int32_t> leaf_ids;       // exact rescoring of the chosen leaves
  std::vector<float> leaf_scores;

  void Prepare(const PartitionedView& v, int32_t capacity) {
    lut.resize(int64_t{v.num_blocks} * 17);
    table.resize(int64_t{PaddedBlocks(v.num_blocks)} * 16);
    found.resize(BufferSize(capacity));
    rescore_ids.resize(capacity);
    rescored.resize(capacity);
    query_row.assign(v.row_stride, 0.0f);
    cands.reserve(capacity);
    if (v.spilled) {
      const size_t words = static_cast<size_t>((v.num_points + 63) / 64);
      if (dirty || distinct.size() < 2 * words) {
        distinct.assign(std::max(2 * words, distinct.size()), 0);
        dirty = false;
      }
    }
  }
};

Scratch& ThreadScratch(const PartitionedView& v, int32_t capacity) {
  thread_local Scratch scratch;
  scratch.Prepare(v, capacity);
  return scratch;
}

// Candidates a query wants after the scan: pre_reorder, or k without
// reordering. A request beyond the rows the index holds means all of them:
// buffers are sized by what the index holds, never by the request alone.
int32_t CandidatesWanted(const PartitionedView& v, const PartitionedParams& p) {
  const int64_t wanted = v.rows != nullptr ? p.pre_reorder : p.k;
  return static_cast<int32_t>(std::min(wanted, std::max<int64_t>(v.num_points, 1)));
}

// An empty candidate buffer over `entries` that keeps `keep`: distinct ids
// when the index holds spilled copies (a point's copy in each of two leaves).
CandidateBuffer EmptyBuffer(const PartitionedView& v, Candidate* entries, int32_t size, int32_t keep, Scratch& s) {
  CandidateBuffer b{entries, 0, size, keep, -std::numeric_limits<float>::infinity()};
  if (v.spilled) {
    b.distinct = s.distinct.data();
    b.distinct_words = static_cast<int64_t>(s.distinct.size() / 2);
  }
  return b;
}

// Leaves whose int8-screened centroid scores SelectLeaves rescores exactly to
// choose `count`: a margin for the screening's error.
int32_t ScreenedLeaves(int32_t num_leaves, int32_t count) {
  return std::min(num_leaves, count + std::max(8, count / 4));
}

// The `count` best leaves from a query's raw centroid scores, best first
// (ties: smaller leaf first). When the scores are an int8 screening, a few
// more leaves than asked are rescored exactly from the float32 rows and the
// best `count` of those kept, so screening error only matters at the margin.
// The best leaf comes first; with `sorted`, all of them are in order.
// s.query_row holds the zero-padded query.
void SelectLeaves(const PartitionedView& v, const DenseKernels& dense, const float* scores, int32_t count,
                  bool sorted, Scratch& s) {
  const int32_t num_leaves = v.num_leaves();
  s.leaves.resize(num_leaves);  // capacity kept between queries: no re-initialisation
  if (v.centroid_rows != nullptr) {
    const int32_t screened = ScreenedLeaves(num_leaves, count);
    SelectBestScores(dense.row_select, scores, num_leaves, screened, s.leaves.data());
    s.leaf_ids.resize(screened);
    s.leaf_scores.resize(screened);
    for (int32_t i = 0; i < screened; ++i) s.leaf_ids[i] = s.leaves[i].id;
    RescoreArgs r{};
    r.type = DenseType::kFloat32;
    r.rows = v.centroid_rows;
    r.stride = v.row_stride;
    r.bias = v.centroid_row_bias;
    r.query = s.query_row.data();
    r.ids = s.leaf_ids.data();
    r.count = screened;
    r.out = s.leaf_scores.data();
    dense.rescore(r);
    for (int32_t i = 0; i < screened; ++i) s.leaves[i].score = s.leaf_scores[i];
    PartitionBest(s.leaves.data(), screened, count);
  } else {
    SelectBestScores(dense.row_select, scores, num_leaves, count, s.leaves.data());
  }
  s.chosen.assign(s.leaves.begin(), s.leaves.begin() + count);
  if (sorted) {
    std::sort(s.chosen.begin(), s.chosen.end(), BetterOrder());
  } else {
    std::iter_swap(s.chosen.begin(), std::min_element(s.chosen.begin(), s.chosen.end(), BetterOrder()));
  }
}

// The caller's leaves of one query (PartitionedParams::probes, its row of
// `count`) as s.chosen, skipping leaf -1 (a leaf another shard holds).
void TakeProbes(const Candidate* row, int32_t count, Scratch& s) {
  s.chosen.clear();
  for (int32_t j = 0; j < count; ++j)
    if (row[j].id >= 0) s.chosen.push_back(row[j]);
}

// Starts fetching the head of a leaf's codes, ids and biases while the
// previous leaf is scanned: leaves are a few KB at scattered addresses, too
// short for the hardware prefetcher to ramp up on its own.
void PrefetchLeaf(const PartitionedView& v, int64_t leaf, int64_t group_bytes) {
  constexpr int64_t kLine = 64, kMaxBytes = 2048;
  const LeafData& data = v.leaves[leaf];
  const char* codes = reinterpret_cast<const char*>(data.codes);
  const int64_t code_bytes = std::min(kMaxBytes, data.size / kLut16Group * group_bytes);
  for (int64_t off = 0; off < code_bytes; off += kLine) Prefetch(codes + off);
  const int64_t meta_bytes = std::min(kMaxBytes / 4, data.size * 4);
  for (int64_t off = 0; off < meta_bytes; off += kLine) {
    Prefetch(reinterpret_cast<const char*>(data.ids) + off);
    if (data.bias != nullptr) Prefetch(reinterpret_cast<const char*>(data.bias) + off);
  }
}

void FinishQuery(const PartitionedView& v, const PartitionedKernels& kernels, const float* query,
                 const PartitionedParams& p, const CandidateBuffer& found, Scratch& s, int64_t* out_ids,
                 float* out_scores, float* out_approx);

// Candidates mode's answer for one query: its `count` candidates (reordered
// scores) in their order, then padding to k; out_approx holds the first
// `count` approximate scores already.
void WriteCandidates(const Candidate* cands, int32_t count, int32_t k, int64_t* out_ids, float* out_scores,
                     float* out_approx) {
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < k; ++i) {
    const bool have = i < count;
    out_ids[i] = have ? cands[i].id : -1;
    out_scores[i] = have ? cands[i].score : kNone;
    if (!have) out_approx[i] = kNone;
  }
}

// The scan arguments of one (non-empty) leaf for one query whose table is built:
// the leaf's codes, ids and biases, and base = the table's base + the leaf
// center's exact score.
Lut16Args LeafScanArgs(const PartitionedView& v, const PartitionedParams& p, int64_t leaf, const uint8_t* table,
                       float inv_scale, float base, CandidateBuffer* candidates) {
  const LeafData& data = v.leaves[leaf];
  Lut16Args a;
  a.num_blocks = PaddedBlocks(v.num_blocks);
  a.codes = data.codes;
  a.num_points = data.size;
  a.ids = data.ids;
  a.point_bias = data.bias;
  a.lut = table;
  a.inv_scale = inv_scale;
  a.base = base;
  a.candidates = candidates;
  a.allowed = p.allowed;
  return a;
}

// Rescoring arguments over the reorder copy; the caller sets query, ids and out.
RescoreArgs ReorderArgs(const PartitionedView& v) {
  RescoreArgs r{};
  r.type = v.reorder_type;
  r.rows = v.rows;
  r.stride = v.row_stride;
  r.bias = v.row_bias;
  r.scale = v.row_scale;
  r.offset = v.row_offset;
  return r;
}

// One query, its leaves chosen (s.chosen): LUT, scan, dedup, reorder, top k.
void SearchOne(const PartitionedView& v, const PartitionedKernels& kernels, const float* query,
               const PartitionedParams& p, Scratch& s, int64_t* out_ids, float* out_scores, float* out_approx,
               StageTimes* times) {
  const int32_t capacity = CandidatesWanted(v, p);
  Clock::time_point t0;
  if (times) t0 = Clock::now();

  float inv_scale, lut_base;
  Lut16BuildArgs build{query, v.lut_centers, v.num_blocks, v.dims_per_block, s.lut.data(),
                       s.table.data(), &inv_scale, &lut_base};
  kernels.build(build);
  if (times) {
    times->lut += NanosSince(t0);
    t0 = Clock::now();
  }

  CandidateBuffer found = EmptyBuffer(v, s.found.data(), static_cast<int32_t>(s.found.size()), capacity, s);
  s.dirty = v.spilled;
  const int64_t group_bytes = int64_t{PaddedBlocks(v.num_blocks)} * 16;
  const size_t num_chosen = s.chosen.size();
  for (size_t i = 0; i < num_chosen; ++i) {
    const Candidate& chosen = s.chosen[i];
    if (i + 1 < num_chosen) PrefetchLeaf(v, s.chosen[i + 1].id, group_bytes);
    if (v.leaves[chosen.id].size == 0) continue;
    kernels.scan(LeafScanArgs(v, p, chosen.id, s.table.data(), inv_scale, lut_base + chosen.score, &found));
  }
  CompactCandidates(found);
  s.dirty = false;
  if (times) {
    times->scan += NanosSince(t0);
    t0 = Clock::now();
  }
  FinishQuery(v, kernels, query, p, found, s, out_ids, out_scores, out_approx);
  if (times) times->reorder += NanosSince(t0);
}

// After the scan of one query (found compacted: distinct ids, s.query_row
// holding the query): reordering, the top k; in candidates mode (out_approx
// set) every kept candidate with both of its scores instead.
void FinishQuery(const PartitionedView& v, const PartitionedKernels& kernels, const float* query,
                 const PartitionedParams& p, const CandidateBuffer& found, Scratch& s, int64_t* out_ids,
                 float* out_scores, float* out_approx) {
  const bool reorder = v.rows != nullptr;
  s.cands.assign(found.entries, found.entries + found.size);  // distinct ids (EmptyBuffer)
  const int32_t kept = static_cast<int32_t>(s.cands.size());  // <= p.k in candidates mode
  if (out_approx != nullptr)
    for (int32_t i = 0; i < kept; ++i) out_approx[i] = s.cands[i].score;
  if (reorder) {
    const int32_t count = static_cast<int32_t>(s.cands.size());
    for (int32_t i = 0; i < count; ++i) s.rescore_ids[i] = s.cands[i].id;
    RescoreArgs r = ReorderArgs(v);
    r.query = s.query_row.data();
    r.query_sum = QuerySum(query, v.dim);
    r.ids = s.rescore_ids.data();
    r.count = count;
    r.out = s.rescored.data();
    kernels.dense->rescore(r);
    for (int32_t i = 0; i < count; ++i) s.cands[i].score = s.rescored[i];
  }
  if (out_approx == nullptr) {
    WriteTopK(s.cands, p.k, out_ids, out_scores);
  } else {
    WriteCandidates(s.cands.data(), kept, p.k, out_ids, out_scores, out_approx);
  }
}

// A block of queries scanned together: each query's LUT16 table and its
// candidate buffer (keeping `capacity`).
struct QueryBlock {
  QueryBlock(const PartitionedView& v, int64_t count, int32_t capacity)
      : table_bytes(int64_t{PaddedBlocks(v.num_blocks)} * 16),
        buffer_size(BufferSize(capacity)),
        capacity(capacity),
        tables(count * table_bytes),
        inv_scales(count),
        lut_bases(count),
        entries(count * buffer_size),
        buffers(count) {}

  // Builds query i's table and empties its buffer.
  void Start(const PartitionedView& v, const PartitionedKernels& kernels, int64_t i, const float* query,
             Scratch& s) {
    Lut16BuildArgs build{query, v.lut_centers, v.num_blocks, v.dims_per_block, s.lut.data(),
                         tables.data() + i * table_bytes, &inv_scales[i], &lut_bases[i]};
    kernels.build(build);
    buffers[i] = EmptyBuffer(v, entries.data() + i * buffer_size, static_cast<int32_t>(buffer_size), capacity, s);
  }

  // The scan of `leaf` (exact centroid score leaf_score) for query i, into `into`.
  Lut16Args ScanArgs(const PartitionedView& v, const PartitionedParams& p, int64_t i, int64_t leaf,
                     float leaf_score, CandidateBuffer* into) const {
    return LeafScanArgs(v, p, leaf, tables.data() + i * table_bytes, inv_scales[i], lut_bases[i] + leaf_score, into);
  }

  const int64_t table_bytes, buffer_size;
  const int32_t capacity;
  std::vector<uint8_t> tables;
  std::vector<float> inv_scales, lut_bases;
  std::vector<Candidate> entries;
  std::vector<CandidateBuffer> buffers;
};

// Scans each probed leaf once per kLut16MaxQueries of the queries probing it,
// into their buffers: probes[j] (score = the leaf's score, id = the query in
// the block) probes leaf probe_leaf[j].
void ScanProbesLeafMajor(const PartitionedView& v, const PartitionedKernels& kernels, const PartitionedParams& p,
                         const std::vector<Candidate>& probes, const std::vector<int32_t>& probe_leaf,
                         QueryBlock& block) {
  const int32_t num_leaves = v.num_leaves();
  std::vector<int32_t> per_leaf(num_leaves + 1, 0);
  for (const int32_t leaf : probe_leaf) ++per_leaf[leaf + 1];
  for (int32_t l = 0; l < num_leaves; ++l) per_leaf[l + 1] += per_leaf[l];
  std::vector<Candidate> by_leaf(probes.size());
  {
    std::vector<int32_t> fill(per_leaf.begin(), per_leaf.end() - 1);
    for (size_t j = 0; j < probes.size(); ++j) by_leaf[fill[probe_leaf[j]]++] = probes[j];
  }
  Lut16Args args[kLut16MaxQueries];
  for (int32_t leaf = 0; leaf < num_leaves; ++leaf) {
    if (v.leaves[leaf].size == 0 || per_leaf[leaf] == per_leaf[leaf + 1]) continue;
    for (int32_t j0 = per_leaf[leaf]; j0 < per_leaf[leaf + 1]; j0 += kLut16MaxQueries) {
      const int n = std::min<int32_t>(kLut16MaxQueries, per_leaf[leaf + 1] - j0);
      for (int j = 0; j < n; ++j) {
        const Candidate probe = by_leaf[j0 + j];
        args[j] = block.ScanArgs(v, p, probe.id, leaf, probe.score, &block.buffers[probe.id]);
      }
      kernels.scan_multi(args, n);
    }
  }
}

// A block of queries searched leaf-major: every query's leaves are chosen
// (centroids scored kScoreChunk queries at a time, on this thread, unless
// `given` has them) and its table built first, then each leaf probed by any
// of them is scanned once per kLut16MaxQueries of its queries (codes loaded
// and split once per pass, the leaf's codes hot in cache across passes), the
// queries' best leaves in a pass of their own first, then each query is
// finished as SearchOne would. The results are identical: a candidate buffer
// keeps the exact best set whatever order the leaves come in. With `kept` set, each
// query's candidates are left there instead ([count][CandidatesWanted], the
// number in kept_counts) for the caller to reorder in row order.
void SearchBlockLeafMajor(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries,
                          int64_t count, const Candidate* given, const PartitionedParams& p, Scratch& s,
                          int64_t* out_ids, float* out_scores, float* out_approx, Candidate* kept,
                          int32_t* kept_counts) {
  const int64_t stride = v.centroids.num_panels() * kPanelWidth;
  if (given == nullptr) s.centroid_scores.resize(std::min(count, kScoreChunk) * stride);
  const int32_t capacity = CandidatesWanted(v, p);
  QueryBlock block(v, count, capacity);
  std::vector<CandidateBuffer>& buffers = block.buffers;
  s.dirty = v.spilled;  // until every buffer's last compaction
  // (leaf, query, leaf score) for every probe but each query's best leaf.
  std::vector<Candidate> probes;  // score = leaf score, id = query within the block
  std::vector<int32_t> probe_leaf;
  std::vector<Candidate> first_probes;  // each query's best leaf, as probes
  std::vector<int32_t> first_leaf;
  probes.reserve(count * p.leaves);
  probe_leaf.reserve(count * p.leaves);
  first_probes.reserve(count);
  first_leaf.reserve(count);
  for (int64_t i = 0; i < count; ++i) {
    const float* query = queries + i * v.dim;
    std::copy(query, query + v.dim, s.query_row.begin());
    if (given != nullptr) {
      TakeProbes(given + i * p.leaves, p.leaves, s);
    } else {
      if (i % kScoreChunk == 0)
        DenseScores(v.centroids, *kernels.dense, query, std::min(kScoreChunk, count - i), s.centroid_scores.data(),
                    stride, 1);
      SelectLeaves(v, *kernels.dense, s.centroid_scores.data() + (i % kScoreChunk) * stride, p.leaves, false, s);
    }
    block.Start(v, kernels, i, query, s);
    if (!s.chosen.empty()) {
      first_probes.push_back(Candidate{s.chosen.front().score, static_cast<int32_t>(i)});
      first_leaf.push_back(s.chosen.front().id);
    }
    for (size_t j = 1; j < s.chosen.size(); ++j) {
      const Candidate& leaf = s.chosen[j];
      probes.push_back(Candidate{leaf.score, static_cast<int32_t>(i)});
      probe_leaf.push_back(leaf.id);
    }
  }
  // Each query's best leaf is scanned first and its candidates set the buffer's threshold,
  // so the pass over the other leaves keeps fewer survivors. Leaf-major too: those leaves
  // are scattered, and in storage order they are read more nearly in sequence (photo-SIFT,
  // one thread: 1.07-1.08x faster than scanning each alone as its query's leaves are chosen).
  ScanProbesLeafMajor(v, kernels, p, first_probes, first_leaf, block);
  for (int64_t i = 0; i < count; ++i) MakeRoom(buffers[i]);
  ScanProbesLeafMajor(v, kernels, p, probes, probe_leaf, block);
  for (int64_t i = 0; i < count; ++i) {
    const float* query = queries + i * v.dim;
    CompactCandidates(buffers[i]);
    if (kept != nullptr) {
      std::copy(buffers[i].entries, buffers[i].entries + buffers[i].size, kept + i * capacity);
      kept_counts[i] = buffers[i].size;
      if (out_approx != nullptr)  // their approximate scores, before reordering replaces them
        for (int32_t j = 0; j < buffers[i].size; ++j) out_approx[i * p.k + j] = buffers[i].entries[j].score;
      continue;
    }
    std::copy(query, query + v.dim, s.query_row.begin());
    FinishQuery(v, kernels, query, p, buffers[i], s, out_ids + i * p.k, out_scores + i * p.k,
                out_approx != nullptr ? out_approx + i * p.k : nullptr);
  }
  s.dirty = false;
}

// A query's wanted rows, sorted by row, each with its output column (a row
// may be wanted in several columns).
struct WantedRow {
  int32_t row;
  int32_t column;
};

// out[column] = the position, in BetterOrder, of each wanted row among
// entries[0, size) (distinct rows), or `missing` where it is not there.
// wanted [num_wanted] sorted by row; `marked` has their bits set. A position
// is the number of entries better than the row's own: each entry is counted
// once, at the first (best) found wanted row it beats, and the counts summed
// down the found rows in their order (no sort of the entries).
void WantedPositions(const Candidate* entries, int32_t size, const WantedRow* wanted, int32_t num_wanted,
                     const uint64_t* marked, int32_t missing, std::vector<Candidate>& found,
                     std::vector<int32_t>& beaten_first, int32_t* out) {
  std::fill(out, out + num_wanted, missing);
  found.clear();
  for (int32_t i = 0; i < size; ++i) {
    const uint32_t row = static_cast<uint32_t>(entries[i].id);
    if ((marked[row >> 6] >> (row & 63)) & 1) found.push_back(entries[i]);
  }
  if (found.empty()) return;
  std::sort(found.begin(), found.end(), BetterOrder());
  const int32_t n = static_cast<int32_t>(found.size());
  beaten_first.assign(n + 1, 0);
  for (int32_t i = 0; i < size; ++i) {
    int32_t lo = 0, hi = n;  // the first found row entries[i] beats (n: none)
    while (lo < hi) {
      const int32_t mid = (lo + hi) / 2;
      if (Better(entries[i], found[mid])) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    ++beaten_first[lo];
  }
  int32_t better = 0;
  for (int32_t t = 0; t < n; ++t) {
    better += beaten_first[t];
    const WantedRow* end = wanted + num_wanted;
    const WantedRow* it = std::lower_bound(wanted, end, found[t].id,
                                           [](const WantedRow& w, int32_t row) { return w.row < row; });
    for (; it != end && it->row == found[t].id; ++it) out[it->column] = better;
  }
}

// How many leaves the screened (int8) centroid scores rank above `worst` (a
// screened (score, leaf), BetterOrder). The first `count` leaves of
// SelectLeaves' choice of more leaves (best first) are its choice for `count`
// unless the screen would have missed one of them: the worst of them, by its
// screened score, must rank within ScreenedLeaves(count). (Without int8
// screening, scores are exact and choices nested: 0.)
int32_t ScreenedAbove(const PartitionedView& v, const float* scores, Candidate worst) {
  if (v.centroid_rows == nullptr) return 0;
  int32_t above = 0;
  for (int32_t l = 0; l < v.num_leaves(); ++l) above += Better(Candidate{scores[l], l}, worst);
  return above;
}

// AhRanksOverGrid for a block of queries (see the header): their leaves for
// the largest grid point chosen once, then scanned leaf-major a grid segment
// at a time, each query's buffer compacted and ranked after each segment.
// (query, grid point) pairs whose leaves are not that prefix are scanned again
// on their own.
void RankBlockOverGrid(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries,
                       int64_t count, const float* centroid_scores, int64_t stride, const int32_t* grid,
                       int32_t num_grid, const PartitionedParams& p, const int32_t* wanted_rows, int32_t m,
                       int64_t nq_total, int64_t q_first, Scratch& s, int32_t* out) {
  const int32_t most = grid[num_grid - 1];
  QueryBlock block(v, count, CandidatesWanted(v, p));
  std::vector<Candidate> chosen(count * most);
  std::vector<uint8_t> nested(count * num_grid);
  for (int64_t i = 0; i < count; ++i) {
    const float* query = queries + i * v.dim;
    const float* scores = centroid_scores + i * stride;
    std::copy(query, query + v.dim, s.query_row.begin());
    SelectLeaves(v, *kernels.dense, scores, most, true, s);
    std::copy(s.chosen.begin(), s.chosen.end(), chosen.begin() + i * most);
    // The prefix's worst screened (score, leaf), and how many leaves the screen ranks
    // above it (counted again only when it changes).
    Candidate worst{std::numeric_limits<float>::infinity(), -1};
    int32_t screened_above = 0;
    for (int32_t g = 0, j = 0; g < num_grid; ++g) {
      bool worse = false;
      for (; j < grid[g]; ++j) {
        const Candidate screened{scores[s.chosen[j].id], s.chosen[j].id};
        if (worst.id < 0 || Better(worst, screened)) {
          worst = screened;
          worse = true;
        }
      }
      if (worse) screened_above = ScreenedAbove(v, scores, worst);
      nested[i * num_grid + g] = screened_above < ScreenedLeaves(v.num_leaves(), grid[g]);
    }
    block.Start(v, kernels, i, query, s);
  }
  const int64_t words = (v.num_points + 63) / 64;
  std::vector<uint64_t> marked(words, 0);
  // Each query's wanted rows, sorted by row (WantedPositions looks them up).
  std::vector<WantedRow> wanted(count * m);
  for (int64_t i = 0; i < count; ++i) {
    const int32_t* rows = wanted_rows + (q_first + i) * m;
    WantedRow* w = wanted.data() + i * m;
    for (int32_t j = 0; j < m; ++j) w[j] = WantedRow{rows[j], j};
    std::sort(w, w + m, [](const WantedRow& a, const WantedRow& b) { return a.row < b.row; });
  }
  std::vector<Candidate> found;
  std::vector<int32_t> beaten_first;
  std::vector<Candidate> probes;
  std::vector<int32_t> probe_leaf;
  // Ranks one query's current (compacted) buffer into out[g][q].
  auto rank = [&](int64_t i, int32_t g, const CandidateBuffer& b) {
    const int64_t q = q_first + i;
    const int32_t* rows = wanted_rows + q * m;
    for (int32_t j = 0; j < m; ++j)
      if (rows[j] >= 0) marked[rows[j] >> 6] |= uint64_t{1} << (rows[j] & 63);
    WantedPositions(b.entries, b.size, wanted.data() + i * m, m, marked.data(), p.k, found, beaten_first,
                    out + (int64_t{g} * nq_total + q) * m);
    for (int32_t j = 0; j < m; ++j)
      if (rows[j] >= 0) marked[rows[j] >> 6] = 0;
  };
  s.dirty = v.spilled;
  for (int32_t g = 0; g < num_grid; ++g) {
    const int32_t first = g == 0 ? 0 : grid[g - 1];
    probes.clear();
    probe_leaf.clear();
    for (int64_t i = 0; i < count; ++i) {
      for (int32_t j = first; j < grid[g]; ++j) {
        const Candidate& leaf = chosen[i * most + j];
        probes.push_back(Candidate{leaf.score, static_cast<int32_t>(i)});
        probe_leaf.push_back(leaf.id);
      }
    }
    ScanProbesLeafMajor(v, kernels, p, probes, probe_leaf, block);
    for (int64_t i = 0; i < count; ++i) {
      CompactCandidates(block.buffers[i]);
      rank(i, g, block.buffers[i]);
    }
  }
  // The rare pairs whose leaves differ from the prefix: their own scan.
  std::vector<Candidate> own(block.buffer_size);
  for (int64_t i = 0; i < count; ++i) {
    for (int32_t g = 0; g < num_grid; ++g) {
      if (nested[i * num_grid + g]) continue;
      std::copy(queries + i * v.dim, queries + (i + 1) * v.dim, s.query_row.begin());
      SelectLeaves(v, *kernels.dense, centroid_scores + i * stride, grid[g], false, s);
      CandidateBuffer b = EmptyBuffer(v, own.data(), static_cast<int32_t>(block.buffer_size), block.capacity, s);
      for (const Candidate& leaf : s.chosen) {
        if (v.leaves[leaf.id].size == 0) continue;
        kernels.scan(block.ScanArgs(v, p, i, leaf.id, leaf.score, &b));
      }
      CompactCandidates(b);
      rank(i, g, b);
    }
  }
  s.dirty = false;
}

// Queries per leaf-major block of a chunk of m, in rounds of one block per
// thread. Where kLeafMajorBlock queries probe each leaf about kProbesPerLeaf
// times, at most that many (a block's tables and buffers stay in cache);
// where they would not (many leaves, few of them probed), at least enough
// that they do, so each leaf's codes are loaded and split once for several
// queries. Fewer where the chunk has fewer per thread; within max_block.
int64_t LeafMajorBlock(int64_t m, int threads, int32_t leaves, int32_t num_leaves, int64_t max_block) {
  const int64_t sharing = kProbesPerLeaf * num_leaves / leaves;
  const int64_t per_round = threads * std::max(kLeafMajorBlock, sharing);
  const int64_t rounds =
      sharing > kLeafMajorBlock ? std::max<int64_t>(1, m / per_round) : (m + per_round - 1) / per_round;
  const int64_t block = (m + threads * rounds - 1) / (threads * rounds);
  return std::min(max_block, std::max(block, kLeafMajorMinQueries));
}

// A batch searched leaf-major, a block of queries per task
// (SearchBlockLeafMajor). A batch whose candidates, all reordered together,
// would cover enough of the reorder copy is taken in chunks as large as the
// pairs allow, each chunk's candidates reordered in row order together.
void SearchLeafMajor(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                     const PartitionedParams& p, int threads, int32_t capacity, int64_t max_block,
                     int64_t* out_ids, float* out_scores) {
  const int64_t row_order_chunk = std::min(kRowOrderChunk, kRowOrderMaxPairs / capacity);
  const bool row_order = v.rows != nullptr && std::min(nq, row_order_chunk) >= kLeafMajorMinQueries &&
                         RowOrderPays(std::min(nq, row_order_chunk) * capacity, v.num_points);
  const int64_t chunk = row_order ? row_order_chunk : nq;
  for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
    const int64_t m = std::min(chunk, nq - q0);
    const int64_t block = LeafMajorBlock(m, threads, p.leaves, v.num_leaves(), max_block);
    // Kept by the calling thread between calls, as row_order.cpp's buffers;
    // the workers reach them through the pointers.
    thread_local std::vector<Candidate> kept_buffer;
    thread_local std::vector<int32_t> kept_count_buffer;
    if (row_order) {  // (a last, smaller chunk too: the rows it shares are a bonus)
      kept_buffer.resize(m * capacity);
      kept_count_buffer.resize(m);
    }
    Candidate* const kept = kept_buffer.data();
    int32_t* const kept_counts = kept_count_buffer.data();
    ParallelFor((m + block - 1) / block, threads, [&](int64_t task) {
      Scratch& s = ThreadScratch(v, capacity);
      const int64_t i0 = task * block, count = std::min(m, i0 + block) - i0;
      const int64_t q = q0 + i0;
      const Candidate* given = p.probes != nullptr ? p.probes + q * p.leaves : nullptr;
      SearchBlockLeafMajor(v, kernels, queries + q * v.dim, count, given, p, s, out_ids + q * p.k, out_scores + q * p.k,
                           p.out_approx != nullptr ? p.out_approx + q * p.k : nullptr,
                           row_order ? kept + i0 * capacity : nullptr, row_order ? kept_counts + i0 : nullptr);
    });
    if (!row_order) continue;
    RescoreInRowOrder(*kernels.dense, ReorderArgs(v), v.num_points, v.dim, queries + q0 * v.dim, m, kept, capacity,
                      kept_counts, threads);
    ParallelFor(m, threads, [&](int64_t i) {
      const int64_t q = q0 + i;
      if (p.out_approx != nullptr) {
        WriteCandidates(kept + i * capacity, kept_counts[i], p.k, out_ids + q * p.k, out_scores + q * p.k,
                        p.out_approx + q * p.k);
        return;
      }
      Scratch& s = ThreadScratch(v, capacity);
      s.cands.assign(kept + i * capacity, kept + i * capacity + kept_counts[i]);
      WriteTopK(s.cands, p.k, out_ids + q * p.k, out_scores + q * p.k);
    });
    if (m * capacity > kRowOrderKeptPairs) std::vector<Candidate>().swap(kept_buffer);
  }
}

}  // namespace

void PartitionedSearch(const PartitionedView& v, const PartitionedKernels& kernels,
                       const float* queries, int64_t nq, const PartitionedParams& p, int num_threads,
                       int64_t* out_ids, float* out_scores, StageTimes* times) {
  if (p.leaves < 1 || p.leaves > v.num_leaves()) throw std::invalid_argument("leaves must be in [1, num_leaves]");
  if (p.k < 1) throw std::invalid_argument("k must be positive");
  if (v.rows != nullptr && p.pre_reorder < p.k) throw std::invalid_argument("pre_reorder must be >= k");
  if (p.out_approx != nullptr && p.pre_reorder != p.k)
    throw std::invalid_argument("candidates mode keeps pre_reorder == k candidates");
  const int threads = ResolveThreads(num_threads);
  const int32_t capacity = CandidatesWanted(v, p);
  const Clock::time_point start = Clock::now();
  // Stage times are only kept for single-threaded calls (a sum over threads
  // would not be a wall-clock breakdown).
  StageTimes* stage = threads == 1 ? times : nullptr;
  const int64_t max_block = kLeafMajorBufferBytes / (int64_t{BufferSize(capacity)} * int64_t{sizeof(Candidate)});
  if (stage == nullptr && nq >= kLeafMajorMinQueries && max_block >= kLeafMajorMinQueries) {
    SearchLeafMajor(v, kernels, queries, nq, p, threads, capacity, max_block, out_ids, out_scores);
    if (times) times->total += NanosSince(start);
    return;
  }
  const int64_t stride = v.centroids.num_panels() * kPanelWidth;
  const int64_t chunk = std::max<int64_t>(1, std::min(kQueryChunk, kMaxChunkScores / stride));
  // Leaves the caller chose need no centroid scores.
  const bool choose = p.probes == nullptr;
  std::vector<float> centroid_scores(choose ? std::min(chunk, nq) * stride : 0);
  for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
    const int64_t m = std::min(chunk, nq - q0);
    Clock::time_point t0 = Clock::now();
    if (choose)
      DenseScores(v.centroids, *kernels.dense, queries + q0 * v.dim, m, centroid_scores.data(), stride, threads);
    if (stage) stage->centroids += NanosSince(t0);
    const int64_t tasks = (m + kQueriesPerTask - 1) / kQueriesPerTask;
    ParallelFor(tasks, threads, [&](int64_t task) {
      Scratch& s = ThreadScratch(v, capacity);
      const int64_t end = std::min(m, (task + 1) * kQueriesPerTask);
      for (int64_t i = task * kQueriesPerTask; i < end; ++i) {
        const int64_t q = q0 + i;
        Clock::time_point t1;
        if (stage) t1 = Clock::now();
        std::copy(queries + q * v.dim, queries + (q + 1) * v.dim, s.query_row.begin());
        if (choose) {
          SelectLeaves(v, *kernels.dense, centroid_scores.data() + i * stride, p.leaves, true, s);
        } else {
          TakeProbes(p.probes + q * p.leaves, p.leaves, s);
        }
        if (stage) stage->centroids += NanosSince(t1);
        SearchOne(v, kernels, queries + q * v.dim, p, s, out_ids + q * p.k, out_scores + q * p.k,
                  p.out_approx != nullptr ? p.out_approx + q * p.k : nullptr, stage);
      }
    });
  }
  if (times) times->total += NanosSince(start);
}

void ChooseLeaves(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                  int32_t count, int num_threads, Candidate* out) {
  if (count < 1 || count > v.num_leaves()) throw std::invalid_argument("leaves must be in [1, num_leaves]");
  const int threads = ResolveThreads(num_threads);
  const int64_t stride = v.centroids.num_panels() * kPanelWidth;
  const int64_t chunk = std::max<int64_t>(1, std::min(kQueryChunk, kMaxChunkScores / stride));
  std::vector<float> scores(std::min(chunk, nq) * stride);
  for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
    const int64_t m = std::min(chunk, nq - q0);
    DenseScores(v.centroids, *kernels.dense, queries + q0 * v.dim, m, scores.data(), stride, threads);
    ParallelFor(m, threads, [&](int64_t i) {
      Scratch& s = ThreadScratch(v, 1);
      const int64_t q = q0 + i;
      std::copy(queries + q * v.dim, queries + (q + 1) * v.dim, s.query_row.begin());
      SelectLeaves(v, *kernels.dense, scores.data() + i * stride, count, true, s);
      std::copy(s.chosen.begin(), s.chosen.end(), out + q * count);
    });
  }
}

void AhRanksOverGrid(const PartitionedView& view, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                     const int32_t* grid, int32_t num_grid, int32_t count, const int32_t* wanted_rows, int32_t m,
                     int num_threads, int32_t* out) {
  if (num_grid < 1) throw std::invalid_argument("the grid of leaf counts is empty");
  for (int32_t g = 0; g < num_grid; ++g) {
    if (grid[g] < 1 || grid[g] > view.num_leaves() || (g > 0 && grid[g] <= grid[g - 1]))
      throw std::invalid_argument("the grid must rise strictly within [1, num_leaves]");
  }
  if (count < 1) throw std::invalid_argument("count must be positive");
  if (m < 1) throw std::invalid_argument("give at least one wanted row per query");
  for (int64_t j = 0; j < nq * m; ++j)
    if (wanted_rows[j] < -1 || wanted_rows[j] >= view.num_points)
      throw std::invalid_argument("a wanted row is out of range");
  PartitionedView v = view;
  v.rows = nullptr;  // the AH candidates, before any reordering
  const PartitionedParams p{grid[num_grid - 1], count, count};
  const int32_t capacity = CandidatesWanted(v, p);
  const int threads = ResolveThreads(num_threads);
  const int64_t stride = v.centroids.num_panels() * kPanelWidth;
  const int64_t chunk = std::max<int64_t>(1, std::min(kQueryChunk, kMaxChunkScores / stride));
  // Per query: its buffer, and its leaves for the largest grid point.
  const int64_t per_query = int64_t{BufferSize(capacity)} * int64_t{sizeof(Candidate)} +
                            int64_t{p.leaves} * int64_t{sizeof(Candidate)};
  const int64_t max_block = std::max<int64_t>(1, kLeafMajorBufferBytes / per_query);
  std::vector<float> scores(std::min(chunk, nq) * stride);
  for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
    const int64_t n = std::min(chunk, nq - q0);
    DenseScores(v.centroids, *kernels.dense, queries + q0 * v.dim, n, scores.data(), stride, threads);
    const int64_t block = std::min(max_block, std::clamp<int64_t>((n + threads - 1) / threads, 1, kLeafMajorBlock));
    ParallelFor((n + block - 1) / block, threads, [&](int64_t task) {
      Scratch& s = ThreadScratch(v, capacity);
      const int64_t i0 = task * block, size = std::min(n, i0 + block) - i0;
      RankBlockOverGrid(v, kernels, queries + (q0 + i0) * v.dim, size, scores.data() + i0 * stride, stride, grid,
                        num_grid, p, wanted_rows, m, nq, q0 + i0, s, out);
    });
  }
}

void ExactRowSearch(const PartitionedView& v, const PartitionedKernels& kernels, const float* queries, int64_t nq,
                    const int32_t* rows, int64_t num_rows, int32_t k, int num_threads, int64_t* out_ids,
                    float* out_scores) {
  if (v.rows == nullptr) throw std::invalid_argument("exact search needs the reorder copy");
  if (k < 1) throw std::invalid_argument("k must be positive");
  // A chunk of rows (a few hundred KB) stays in cache while a block of
  // queries is rescored against it: the GEMM shape, over gathered rows.
  constexpr int64_t kRowChunk = 256, kQueryBlock = 16;
  const int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  ParallelFor(blocks, ResolveThreads(num_threads), [&](int64_t block) {
    const int64_t q0 = block * kQueryBlock, m = std::min(nq, q0 + kQueryBlock) - q0;
    const int32_t capacity = BufferSize(k);
    std::vector<Candidate> entries(m * capacity);
    std::vector<CandidateBuffer> buffers(m);
    std::vector<float> padded(m * v.row_stride, 0.0f), sums(m, 0.0f), scores(kRowChunk);
    for (int64_t i = 0; i < m; ++i) {
      buffers[i] = CandidateBuffer{entries.data() + i * capacity, 0, capacity, k,
                                   -std::numeric_limits<float>::infinity()};
      const float* q = queries + (q0 + i) * v.dim;
      std::copy(q, q + v.dim, padded.begin() + i * v.row_stride);
      sums[i] = QuerySum(q, v.dim);
    }
    RescoreArgs r = ReorderArgs(v);
    r.out = scores.data();
    for (int64_t c0 = 0; c0 < num_rows; c0 += kRowChunk) {
      r.ids = rows + c0;
      r.count = static_cast<int32_t>(std::min(kRowChunk, num_rows - c0));
      for (int64_t i = 0; i < m; ++i) {
        r.query = padded.data() + i * v.row_stride;
        r.query_sum = sums[i];
        kernels.dense->rescore(r);
        for (int32_t j = 0; j < r.count; ++j) OfferCandidate(buffers[i], scores[j], r.ids[j]);
      }
    }
    std::vector<Candidate> cands;
    for (int64_t i = 0; i < m; ++i) {
      CompactCandidates(buffers[i]);
      cands.assign(buffers[i].entries, buffers[i].entries + buffers[i].size);
      WriteTopK(cands, k, out_ids + (q0 + i) * k, out_scores + (q0 + i) * k);
    }
  });
}

}  // namespace annlib
