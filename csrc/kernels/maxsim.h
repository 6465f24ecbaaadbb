// MaxSim (ColBERT late interaction): score(q, d) = sum_i max_j <q_i, d_j>
// over a query's token rows q_i and a document's token rows d_j.
//
// Document tokens live in one store, [total_tokens][dim], as float16 or as
// int8 with one float scale per token (value = int8 * scale); document i owns
// rows offsets[i] .. offsets[i+1]. A kernel scores a list of documents for one
// query: it widens a block of a document's tokens to float32 and runs
// 4 x 4 register tiles (4 query rows against 4 document rows) over it, so
// each loaded document value feeds four query rows (GEMM-shaped).
#pragma once
#include <cstdint>

namespace annlib {

enum class TokenType : int { kFloat16 = 0, kInt8 = 1 };

constexpr int kMaxSimTile = 4;        // query rows and document rows per tile
constexpr int kMaxSimDimAlign = 16;   // padded_dim is a multiple of this
constexpr int kMaxSimDocBlock = 32;   // document tokens widened at a time

struct MaxSimArgs {
  const float* query;          // [query_rows][padded_dim], zero padded rows and columns
  int32_t query_rows;          // multiple of kMaxSimTile
  int32_t num_query_tokens;    // real rows (summed); <= query_rows
  int32_t dim;                 // token dimension
  int32_t padded_dim;          // dim rounded up to kMaxSimDimAlign
  TokenType type;
  const void* tokens;          // [total_tokens][dim]: uint16 float16 bits or int8
  const float* token_scale;    // int8 only: [total_tokens]
  const int64_t* offsets;      // [num_docs + 1]
  const int64_t* doc_ids;      // [count] documents to score (each with >= 1 token)
  int64_t count;
  float* scratch;              // [kMaxSimDocBlock * padded_dim + query_rows] floats
  float* out;                  // [count] MaxSim scores
};

using MaxSimFn = void (*)(const MaxSimArgs&);

// Defined in kernels/maxsim_<isa>.cpp.
void MaxSimScalar(const MaxSimArgs& a);
void MaxSimNeon(const MaxSimArgs& a);
void MaxSimAvx2(const MaxSimArgs& a);
void MaxSimAvx512(const MaxSimArgs& a);

}  // namespace annlib
