// A late-interaction (MaxSim) scorer as one engine object: a token store
// (float16 tokens, or int8 tokens with a per-token scale) checked once, and
// the kernel of one SIMD level, chosen once. It keeps pointers to the caller's
// arrays (they may be read-only memory maps), which must outlive it.
// Immutable once made; Scores may be called from any thread.
#pragma once
#include <cstdint>

#include "../search/maxsim_search.h"
#include "../simd/dispatch.h"

namespace annlib {

struct MaxSimArrays {
  TokenType type = TokenType::kFloat16;
  const void* tokens = nullptr;         // [num_tokens][dim]
  int64_t num_tokens = 0;
  int32_t dim = 0;
  const float* token_scale = nullptr;   // [num_tokens], int8 only
  int64_t num_scales = 0;
  const int64_t* offsets = nullptr;     // [num_offsets]: document d's tokens are offsets[d]..offsets[d+1]
  int64_t num_offsets = 0;
};

class MaxSimIndex {
 public:
  // Throws std::invalid_argument for a store that does not hold together.
  MaxSimIndex(const MaxSimArrays& arrays, SimdLevel level);

  // out[c] = MaxSim(query_tokens [num_query_tokens][dim], document doc_ids[c]);
  // throws std::invalid_argument for no query tokens or an id out of range.
  void Scores(const float* query_tokens, int32_t num_query_tokens, const int64_t* doc_ids, int64_t count,
              float* out, int num_threads) const;

  int32_t dim() const { return store_.dim; }
  int64_t num_docs() const { return store_.num_docs; }
  SimdLevel level() const { return level_; }

 private:
  TokenStore store_{};
  SimdLevel level_;
  MaxSimFn kernel_;
};

}  // namespace annlib
