// MaxSim scoring of candidate documents for one query, threaded over chunks
// of candidates (see kernels/maxsim.h for the kernel and the token store).
#pragma once
#include <cstdint>

#include "../kernels/maxsim.h"

namespace annlib {

struct TokenStore {
  TokenType type;
  const void* tokens;        // [offsets[num_docs]][dim]
  const float* token_scale;  // int8 only
  const int64_t* offsets;    // [num_docs + 1], validated: 0, increasing by >= 1, total
  int64_t num_docs;
  int32_t dim;
};

// Throws std::invalid_argument unless offsets start at 0, end at total_tokens
// and give every document at least one token.
void CheckTokenOffsets(const int64_t* offsets, int64_t num_docs, int64_t total_tokens);

// out[c] = MaxSim(query_tokens, document doc_ids[c]); ids must be in range
// (checked, std::invalid_argument otherwise).
void MaxSimScores(const TokenStore& store, MaxSimFn kernel, const float* query_tokens, int32_t num_query_tokens,
                  const int64_t* doc_ids, int64_t count, float* out, int num_threads);

}  // namespace annlib
