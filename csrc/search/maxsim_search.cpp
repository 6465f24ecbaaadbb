#include "maxsim_search.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "../util/parallel.h"

namespace annlib {
namespace {

// Candidates per task: enough tokens to amortise a thread's start, few
// enough that 100 candidates still spread over two cores.
constexpr int64_t kDocsPerTask = 32;

}  // namespace

void CheckTokenOffsets(const int64_t* offsets, int64_t num_docs, int64_t total_tokens) {
  if (offsets[0] != 0) throw std::invalid_argument("doc_offsets must start at 0");
  for (int64_t i = 0; i < num_docs; ++i)
    if (offsets[i + 1] <= offsets[i])
      throw std::invalid_argument("doc_offsets must increase: document " + std::to_string(i) +
                                  " has no tokens (every document needs at least one)");
  if (offsets[num_docs] != total_tokens)
    throw std::invalid_argument("doc_offsets must end at the number of token rows (" +
                                std::to_string(total_tokens) + "), got " + std::to_string(offsets[num_docs]));
}

void MaxSimScores(const TokenStore& store, MaxSimFn kernel, const float* query_tokens, int32_t num_query_tokens,
                  const int64_t* doc_ids, int64_t count, float* out, int num_threads) {
  for (int64_t c = 0; c < count; ++c)
    if (doc_ids[c] < 0 || doc_ids[c] >= store.num_docs)
      throw std::invalid_argument("document id " + std::to_string(doc_ids[c]) + " is out of range [0, " +
                                  std::to_string(store.num_docs) + ")");
  if (count == 0) return;
  const int32_t dim = store.dim;
  const int32_t pd = (dim + kMaxSimDimAlign - 1) / kMaxSimDimAlign * kMaxSimDimAlign;
  const int32_t rows = (num_query_tokens + kMaxSimTile - 1) / kMaxSimTile * kMaxSimTile;
  std::vector<float> query(int64_t{rows} * pd, 0.0f);
  for (int32_t i = 0; i < num_query_tokens; ++i)
    std::copy(query_tokens + int64_t{i} * dim, query_tokens + int64_t{i + 1} * dim, query.begin() + int64_t{i} * pd);
  MaxSimArgs base{query.data(), rows, num_query_tokens, dim, pd, store.type, store.tokens, store.token_scale,
                  store.offsets, nullptr, 0, nullptr, nullptr};
  const int64_t tasks = (count + kDocsPerTask - 1) / kDocsPerTask;
  ParallelFor(tasks, ResolveThreads(num_threads), [&](int64_t task) {
    std::vector<float> scratch(int64_t{kMaxSimDocBlock} * pd + rows);
    MaxSimArgs a = base;
    const int64_t first = task * kDocsPerTask;
    a.doc_ids = doc_ids + first;
    a.count = std::min(kDocsPerTask, count - first);
    a.scratch = scratch.data();
    a.out = out + first;
    kernel(a);
  });
}

}  // namespace annlib
