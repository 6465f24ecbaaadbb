#include "maxsim_index.h"

#include <stdexcept>
#include <string>

namespace annlib {

MaxSimIndex::MaxSimIndex(const MaxSimArrays& a, SimdLevel level) : level_(level), kernel_(MaxSimKernelFor(level)) {
  if (a.tokens == nullptr || a.dim < 1) throw std::invalid_argument("tokens must be a (num_tokens, dim >= 1) array");
  if (a.type == TokenType::kFloat16 && a.token_scale != nullptr)
    throw std::invalid_argument("float16 tokens take no token_scale");
  if (a.type == TokenType::kInt8) {
    if (a.token_scale == nullptr) throw std::invalid_argument("int8 tokens need token_scale");
    if (a.num_scales != a.num_tokens)
      throw std::invalid_argument("token_scale must be float32 with one entry per token");
  }
  if (a.offsets == nullptr || a.num_offsets < 2)
    throw std::invalid_argument("offsets must be 1-D with >= 2 entries");
  store_.type = a.type;
  store_.tokens = a.tokens;
  store_.token_scale = a.type == TokenType::kInt8 ? a.token_scale : nullptr;
  store_.offsets = a.offsets;
  store_.num_docs = a.num_offsets - 1;
  store_.dim = a.dim;
  CheckTokenOffsets(store_.offsets, store_.num_docs, a.num_tokens);
}

void MaxSimIndex::Scores(const float* query_tokens, int32_t num_query_tokens, const int64_t* doc_ids, int64_t count,
                         float* out, int num_threads) const {
  if (num_query_tokens < 1) throw std::invalid_argument("query_tokens must have shape (m >= 1, dim)");
  MaxSimScores(store_, kernel_, query_tokens, num_query_tokens, doc_ids, count, out, num_threads);
}

}  // namespace annlib
