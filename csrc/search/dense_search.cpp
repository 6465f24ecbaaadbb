#include "dense_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../util/cancel.h"
#include "../util/parallel.h"
#include "metric.h"
#include "topk.h"

namespace annlib {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();
constexpr int64_t kMaxQueryBlock = 256;  // queries packed and scanned together
// A screened scan converts each panel once per block: larger blocks amortise
// that (the smallest block that pays is the kernel's screen_min_queries).
constexpr int64_t kMaxScreenBlock = 512;
// Multiply-adds of one scan step between two cancellation checks (about
// 10-20 ms on one core).
constexpr int64_t kStepMacs = int64_t{1} << 30;

// The database half of a scan's arguments.
ScanArgs DatabaseArgs(const DenseView& db) {
  ScanArgs args;
  args.panels = db.panels;
  args.bias = db.bias;
  args.scale = db.scale;
  args.offset = db.offset;
  args.sums = db.sums;
  args.scaled_sums = db.scaled_sums;
  args.dim = db.dim;
  return args;
}

int DimsPerGroup(DenseType type) {
  switch (type) {
    case DenseType::kFloat32: return 1;
    case DenseType::kBFloat16: return 2;
    case DenseType::kInt8: return 4;
  }
  return 1;
}

uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);  // nearest even
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t u = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

bool IsIntegerValued(const float* row, int32_t dim) {
  for (int32_t t = 0; t < dim; ++t)
    if (row[t] != std::nearbyint(row[t])) return false;
  return true;
}

// Affine int8 quantisation of one row: x ~= scale * code + offset, codes in
// [-127, 127] (the AVX2 and AVX-512BW int8 dots rely on never seeing -128).
// Integer data with a range of at most 254 (SIFT-like descriptors) is stored
// exactly. code(t) is written through `put`; returns the sum of the codes.
template <class Put>
int32_t QuantizeInt8Row(const float* row, int32_t dim, float* scale, float* offset, Put put) {
  float lo = row[0], hi = row[0];
  for (int t = 1; t < dim; ++t) {
    lo = std::min(lo, row[t]);
    hi = std::max(hi, row[t]);
  }
  float mid = 0.5f * (lo + hi);
  float s = hi > lo ? (hi - lo) / 254.0f : 1.0f;
  if (IsIntegerValued(row, dim) && hi - lo <= 254.0f) {
    s = 1.0f;
    mid = std::floor(0.5f * (lo + hi));
  }
  int32_t total = 0;
  for (int t = 0; t < dim; ++t) {
    int code = static_cast<int>(std::nearbyint((row[t] - mid) / s));
    code = std::min(127, std::max(-127, code));
    put(t, static_cast<int8_t>(code));
    total += code;
  }
  *scale = s;
  *offset = mid;
  return total;
}

// A screened scan's bin winners carry approximate scores. Rescores exactly the
// ones that can still be among the k best and drops the rest: a winner whose
// upper bound (ScreenErrorBound, which needs the points' norms) falls below the
// k-th best lower bound cannot make the top k. On the dev sets about k of the L
// winners remain.
// Each rescore reads d strided cache lines, so at most 2k winners are rescored:
// where the bound is loose (high d, points far from the origin next to small
// score gaps) it can admit nearly all L, and rescoring would outweigh the
// screen (d = 960: 45% of the time). The 2k best screened scores are kept
// then; only near-ties at the k-th place (within the screen's error) can order
// differently than exact scores would.
// The kernel table's score_points_f32 does the rescoring (set with every screen).
void RescoreWinners(const DenseView& db, const DenseKernels& kernels, bool int8_screened, const float* query,
                    int32_t k, std::vector<Candidate>& cands) {
  if (db.norms != nullptr && static_cast<int64_t>(cands.size()) > k) {
    const ScreenErrorBound bound(db, kernels, int8_screened, query);
    std::vector<double> margin(cands.size()), kth(cands.size());  // kth: lower bounds, partly sorted below
    for (size_t i = 0; i < cands.size(); ++i) {
      margin[i] = bound(cands[i].id);
      kth[i] = cands[i].score - margin[i];
    }
    std::nth_element(kth.begin(), kth.begin() + (k - 1), kth.end(), std::greater<double>());
    const double threshold = kth[k - 1];
    size_t kept = 0;
    for (size_t i = 0; i < cands.size(); ++i)
      if (cands[i].score + margin[i] >= threshold) cands[kept++] = cands[i];
    cands.resize(kept);
  }
  const size_t cap = 2 * static_cast<size_t>(k);
  if (cands.size() > cap) {
    std::nth_element(cands.begin(), cands.begin() + cap, cands.end(), BetterOrder());
    cands.resize(cap);
  }
  // The scan's own float32 arithmetic: a point scores the same here as in an
  // unscreened search of one query.
  kernels.score_points_f32(PointScoreArgs{static_cast<const float*>(db.panels), db.bias, db.dim, query,
                                          cands.data(), static_cast<int32_t>(cands.size())});
}

// The int8 copy's panels and per-point arrays (each num_panels * 32 long).
void PackInt8Copy(const DenseView& db, void* panels, const DensePointArrays& out, float* residuals,
                  int num_threads) {
  const int64_t panel_bytes = PanelBytes(DenseType::kInt8, db.dim);
  ParallelFor(db.num_panels(), num_threads, [&](int64_t p) {
    if (p % 64 == 0) ThrowIfCancelled();  // a large index takes seconds
    int8_t* panel = static_cast<int8_t*>(panels) + p * panel_bytes;
    std::memset(panel, 0, panel_bytes);
    std::vector<float> row(db.dim);
    for (int lane = 0; lane < kPanelWidth; ++lane) {
      const int64_t j = p * kPanelWidth + lane;
      if (j >= db.n) {
        out.scale[j] = out.offset[j] = out.scaled_sums[j] = residuals[j] = 0.0f;
        out.sums[j] = 0;
        continue;
      }
      const float* x = PanelPoint(db, j);
      for (int32_t t = 0; t < db.dim; ++t) row[t] = x[int64_t{t} * kPanelWidth];
      auto code_at = [&](int32_t t) -> int8_t& { return panel[((t / 4) * kPanelWidth + lane) * 4 + (t % 4)]; };
      const int32_t total = QuantizeInt8Row(row.data(), db.dim, &out.scale[j], &out.offset[j],
                                            [&](int t, int8_t code) { code_at(t) = code; });
      out.sums[j] = total;
      out.scaled_sums[j] = static_cast<float>(double{out.scale[j]} * total);
      double res2 = 0.0;
      for (int32_t t = 0; t < db.dim; ++t) {
        const double r = double{row[t]} - (double{out.scale[j]} * code_at(t) + out.offset[j]);
        res2 += r * r;
      }
      // Rounded up, so the float never understates the residual (0 stays 0: exact in int8).
      const float r = static_cast<float>(std::sqrt(res2));
      residuals[j] = r > 0.0f ? std::nextafter(r, kPosInf) : 0.0f;
    }
  });
}

}  // namespace

ScreenErrorBound::ScreenErrorBound(const DenseView& db, const DenseKernels& kernels, bool int8_screened,
                                   const float* query)
    : db_(db), kernels_(kernels), int8_(int8_screened),
      bf16_residuals_(!int8_screened && kernels.screen_rounds_to_bf16 && db.bf16_residuals != nullptr),
      sqrt_dim_(std::sqrt(static_cast<double>(db.dim))),
      sums_((3.0 * db.dim + 2.0) * std::ldexp(1.0, -24)) {
  double qnorm2 = 0.0, res2 = 0.0, codes2 = 0.0;
  if (int8_) {
    // The query's codes exactly as the int8 kernel's PackQueries makes them (the same formula).
    std::vector<int8_t> codes(db.dim);
    float scale = 1.0f, mid = 0.0f;
    QuantizeInt8Row(query, db.dim, &scale, &mid, [&](int t, int8_t code) { codes[t] = code; });
    for (int32_t t = 0; t < db.dim; ++t) {
      const double scaled = double{scale} * codes[t];
      const double r = double{query[t]} - (scaled + mid);
      res2 += r * r;
      codes2 += scaled * scaled;
    }
    query_mid_ = std::fabs(double{mid});
  }
  for (int32_t t = 0; t < db.dim; ++t) {
    qnorm2 += double{query[t]} * query[t];
    if (bf16_residuals_) {
      const double r = double{query[t]} - Bf16ToFloat(FloatToBf16(query[t]));
      res2 += r * r;
    }
  }
  qnorm_ = std::sqrt(qnorm2);
  qres_ = std::sqrt(res2);
  qcodes_ = std::sqrt(codes2);
}

double ScreenErrorBound::operator()(int64_t j) const {
  constexpr double kFlushedDenormals = 1e-30;  // bf16 dot products flush denormals to zero
  const double xnorm = db_.norms[j], bias = std::fabs(double{db_.bias[j]});
  double products, finish = 0.0;
  if (int8_) {
    const double r = db_.int8_copy->int8_residuals[j];
    const double offset_norm = std::fabs(double{db_.int8_copy->offset[j]}) * sqrt_dim_;  // |offset * (1, ..., 1)|
    const double xcodes = xnorm + r + offset_norm;  // >= |scale * code|
    products = qnorm_ * r + qres_ * (xnorm + r);
    // Six roundings at most (int to float, two products, the query's sum, two
    // fused adds), each of terms within these three.
    finish = 8.0 * std::ldexp(1.0, -24) *
             (xcodes * qcodes_ + offset_norm * (qnorm_ + qres_) + sqrt_dim_ * xcodes * query_mid_ + bias);
  } else if (bf16_residuals_) {
    const double r = db_.bf16_residuals[j];
    products = qnorm_ * r + qres_ * (xnorm + r);
  } else {
    products = kernels_.screen_error * qnorm_ * xnorm;
  }
  return 2.0 * (products + finish + sums_ * ((qnorm_ + qres_) * xnorm + bias)) + kFlushedDenormals;
}

int64_t PanelBytes(DenseType type, int32_t dim) {
  const int per = DimsPerGroup(type);
  return int64_t{(dim + per - 1) / per} * kPanelWidth * 4;
}

void PackDense(const float* x, int64_t n, int32_t dim, DenseType type, bool squared_l2,
               void* panels, const DensePointArrays& out_arrays, int num_threads) {
  float* bias = out_arrays.bias;
  const int64_t num_panels = (n + kPanelWidth - 1) / kPanelWidth;
  const int64_t panel_bytes = PanelBytes(type, dim);
  uint8_t* base = static_cast<uint8_t*>(panels);
  ParallelFor(num_panels, num_threads, [&](int64_t p) {
    uint8_t* panel = base + p * panel_bytes;
    std::memset(panel, 0, panel_bytes);
    for (int lane = 0; lane < kPanelWidth; ++lane) {
      const int64_t j = p * kPanelWidth + lane;
      if (j >= n) {
        bias[j] = kNegInf;
        if (out_arrays.norms != nullptr) out_arrays.norms[j] = 0.0f;
        if (type == DenseType::kInt8) {
          out_arrays.scale[j] = out_arrays.offset[j] = out_arrays.scaled_sums[j] = 0.0f;
          out_arrays.sums[j] = 0;
        }
        continue;
      }
      const float* row = x + j * dim;
      const double norm2 = SquaredNorm(row, dim);
      bias[j] = squared_l2 ? static_cast<float>(-0.5 * norm2) : 0.0f;
      if (out_arrays.norms != nullptr) out_arrays.norms[j] = static_cast<float>(std::sqrt(norm2));
      switch (type) {
        case DenseType::kFloat32: {
          float* out = reinterpret_cast<float*>(panel);
          for (int t = 0; t < dim; ++t) out[t * kPanelWidth + lane] = row[t];
          break;
        }
        case DenseType::kBFloat16: {
          uint16_t* out = reinterpret_cast<uint16_t*>(panel);
          for (int t = 0; t < dim; ++t)
            out[((t / 2) * kPanelWidth + lane) * 2 + (t % 2)] = FloatToBf16(row[t]);
          break;
        }
        case DenseType::kInt8: {
          int8_t* out = reinterpret_cast<int8_t*>(panel);
          const int32_t total = QuantizeInt8Row(row, dim, &out_arrays.scale[j], &out_arrays.offset[j],
                                                [&](int t, int8_t code) {
                                                  out[((t / 4) * kPanelWidth + lane) * 4 + (t % 4)] = code;
                                                });
          out_arrays.sums[j] = total;
          out_arrays.scaled_sums[j] = static_cast<float>(double{out_arrays.scale[j]} * total);
          break;
        }
      }
    }
  });
}

void Bf16Residuals(const DenseView& db, float* residuals, int num_threads) {
  const float* panels = static_cast<const float*>(db.panels);
  ParallelFor(db.num_panels(), num_threads, [&](int64_t p) {
    const float* panel = panels + p * int64_t{db.dim} * kPanelWidth;
    double sum[kPanelWidth] = {};
    for (int32_t t = 0; t < db.dim; ++t)
      for (int lane = 0; lane < kPanelWidth; ++lane) {
        const float v = panel[int64_t{t} * kPanelWidth + lane];
        const double r = double{v} - Bf16ToFloat(FloatToBf16(v));
        sum[lane] += r * r;
      }
    // Rounded up, so the float never understates the residual (0 stays 0: exact in bf16).
    for (int lane = 0; lane < kPanelWidth; ++lane) {
      const float r = static_cast<float>(std::sqrt(sum[lane]));
      residuals[p * kPanelWidth + lane] = r > 0.0f ? std::nextafter(r, kPosInf) : 0.0f;
    }
  });
}

void MakeInt8Copy(const DenseView& db, int num_threads, Int8Copy* copy) {
  Int8Copy& c = *copy;
  const int64_t padded = db.num_panels() * kPanelWidth;
  c.panels.resize(db.num_panels() * PanelBytes(DenseType::kInt8, db.dim));
  c.scale.resize(padded);
  c.offset.resize(padded);
  c.scaled_sums.resize(padded);
  c.residuals.resize(padded);
  c.sums.resize(padded);
  DensePointArrays out;
  out.scale = c.scale.data();
  out.offset = c.offset.data();
  out.scaled_sums = c.scaled_sums.data();
  out.sums = c.sums.data();
  PackInt8Copy(db, c.panels.data(), out, c.residuals.data(), num_threads);
  c.view = db;
  c.view.type = DenseType::kInt8;
  c.view.panels = c.panels.data();
  c.view.scale = c.scale.data();
  c.view.offset = c.offset.data();
  c.view.scaled_sums = c.scaled_sums.data();
  c.view.sums = c.sums.data();
  c.view.norms = nullptr;
  c.view.bf16_residuals = nullptr;
  c.view.int8_copy = nullptr;
  c.view.int8_residuals = c.residuals.data();
}

int64_t RowStride(int32_t dim) { return (int64_t{dim} + kRowAlign - 1) / kRowAlign * kRowAlign; }

int64_t RowElementBytes(DenseType type) {
  switch (type) {
    case DenseType::kFloat32: return 4;
    case DenseType::kBFloat16: return 2;
    case DenseType::kInt8: return 1;
  }
  return 4;
}

void PackRows(const float* x, int64_t n, int32_t dim, DenseType type, bool squared_l2, void* rows,
              float* bias, float* scale, float* offset, int num_threads) {
  const int64_t stride = RowStride(dim);
  const int64_t row_bytes = stride * RowElementBytes(type);
  uint8_t* base = static_cast<uint8_t*>(rows);
  ParallelFor((n + 255) / 256, num_threads, [&](int64_t chunk) {
    for (int64_t j = chunk * 256; j < std::min(n, (chunk + 1) * 256); ++j) {
      const float* row = x + j * dim;
      uint8_t* out = base + j * row_bytes;
      std::memset(out, 0, row_bytes);
      bias[j] = squared_l2 ? static_cast<float>(-0.5 * SquaredNorm(row, dim)) : 0.0f;
      switch (type) {
        case DenseType::kFloat32:
          std::memcpy(out, row, sizeof(float) * dim);
          break;
        case DenseType::kBFloat16:
          for (int t = 0; t < dim; ++t) reinterpret_cast<uint16_t*>(out)[t] = FloatToBf16(row[t]);
          break;
        case DenseType::kInt8:
          QuantizeInt8Row(row, dim, &scale[j], &offset[j],
                          [&](int t, int8_t code) { reinterpret_cast<int8_t*>(out)[t] = code; });
          break;
      }
    }
  });
}

void DenseSearch(const DenseView& db, const DenseKernels& kernels, const float* queries,
                 int64_t num_queries, int32_t k, int32_t num_bins, int num_threads,
                 int64_t* out_ids, float* out_scores, const uint64_t* allowed) {
  if (k <= 0) throw std::invalid_argument("k must be positive");
  if (num_bins < 0) throw std::invalid_argument("num_bins must be >= 0");
  if (num_bins > 0 && num_bins < k) throw std::invalid_argument("num_bins must be >= k");
  if (num_queries <= 0) return;
  const int threads = ResolveThreads(num_threads);
  const int64_t num_panels = db.num_panels();

  // Binned float32 may screen with cheaper scores: only bin winners matter,
  // and they are rescored exactly below. An int8 copy screens any call; a
  // staged screen (float32 panels converted as they are scanned) only blocks
  // of queries that pay for the conversion.
  const bool binned_f32 = db.type == DenseType::kFloat32 && num_bins > 0;
  const bool int8_screened = binned_f32 && kernels.int8_screen && db.int8_copy != nullptr;
  const bool stageable = binned_f32 && !int8_screened && kernels.screen_f32 != nullptr;
  // Large query blocks stream the database from memory fewer times; with few
  // queries the database itself is split so every thread has work. Each split
  // keeps its own selection state, merged below.
  const int64_t max_block = stageable ? kMaxScreenBlock : kMaxQueryBlock;
  int64_t block = max_block;
  int64_t splits = 1;
  if (num_queries >= int64_t{8} * threads) {
    const int64_t per_thread = (num_queries + threads - 1) / threads;
    block = std::min(max_block, (per_thread + 7) / 8 * 8);
  } else {
    block = num_queries;
    splits = std::max<int64_t>(1, std::min<int64_t>(2 * threads, num_panels / 8));
  }
  const bool screened = int8_screened || (stageable && block >= kernels.screen_min_queries);
  const int64_t qblocks = (num_queries + block - 1) / block;
  const int64_t panels_per_split = (num_panels + splits - 1) / splits;

  const int64_t capacity = num_bins == 0 ? k : int64_t{num_bins} + kPanelWidth;
  std::vector<float> state_scores(splits * num_queries * capacity, kNegInf);
  std::vector<int32_t> state_ids(splits * num_queries * capacity, -1);
  std::vector<SelectState> states(splits * num_queries);
  for (int64_t i = 0; i < splits * num_queries; ++i)
    states[i] = SelectState{state_scores.data() + i * capacity, state_ids.data() + i * capacity, 0};

  const ScanFn scan = int8_screened ? kernels.scan[static_cast<int>(DenseType::kInt8)]
                      : screened    ? kernels.screen_f32
                                    : kernels.scan[static_cast<int>(db.type)];
  const DenseView& scanned = int8_screened ? *db.int8_copy : db;
  // An item scans its panels in steps of about kStepMacs multiply-adds, the
  // selection state carried from step to step (the same result as one scan),
  // so a cancelled call stops within a step.
  const int64_t step_panels = std::max<int64_t>(16, kStepMacs / (block * db.dim * kPanelWidth));
  ParallelFor(qblocks * splits, threads, [&](int64_t item) {
    const int64_t qb = item / splits;
    const int64_t split = item % splits;
    const int64_t q0 = qb * block;
    ScanArgs args = DatabaseArgs(scanned);
    args.queries = queries + q0 * db.dim;
    args.num_queries = static_cast<int32_t>(std::min(block, num_queries - q0));
    args.k = k;
    args.num_bins = num_bins;
    args.states = states.data() + split * num_queries + q0;
    args.allowed = allowed;
    const int64_t begin = split * panels_per_split, end = std::min(num_panels, begin + panels_per_split);
    for (int64_t p = begin; p < end; p += step_panels) {
      if (p > begin) ThrowIfCancelled();
      args.panel_begin = p;
      args.panel_end = std::min(end, p + step_panels);
      scan(args);
    }
  });

  // Merge the splits and select the final top k of each query.
  ParallelFor((num_queries + 63) / 64, threads, [&](int64_t chunk) {
    std::vector<Candidate> cands;
    std::vector<Candidate> bins;
    for (int64_t q = chunk * 64; q < std::min(num_queries, (chunk + 1) * 64); ++q) {
      cands.clear();
      if (num_bins == 0) {
        for (int64_t s = 0; s < splits; ++s) {
          const SelectState& st = states[s * num_queries + q];
          for (int i = 0; i < st.size; ++i) cands.push_back({st.scores[i], st.ids[i]});
        }
      } else {
        bins.assign(num_bins, Candidate{kNegInf, -1});
        for (int64_t s = 0; s < splits; ++s) {
          const SelectState& st = states[s * num_queries + q];
          for (int64_t slot = 0; slot < capacity; ++slot) {
            const Candidate c{st.scores[slot], st.ids[slot]};
            Candidate& bin = bins[slot % num_bins];
            if (c.id >= 0 && (bin.id < 0 || Better(c, bin))) bin = c;
          }
        }
        for (const Candidate& c : bins)
          if (c.id >= 0) cands.push_back(c);
        if (screened) RescoreWinners(db, kernels, int8_screened, queries + q * db.dim, k, cands);
      }
      WriteTopK(cands, k, out_ids + q * k, out_scores + q * k);
    }
  });
}

void DenseScores(const DenseView& db, const DenseKernels& kernels, const float* queries, int64_t num_queries,
                 float* out, int64_t out_stride, int num_threads) {
  const int64_t num_panels = db.num_panels();
  if (out_stride < num_panels * kPanelWidth) throw std::invalid_argument("out_stride is too small");
  if (num_queries <= 0) return;
  constexpr int64_t kBlock = 64;  // queries per task
  const ScanFn scan = kernels.scan[static_cast<int>(db.type)];
  ParallelFor((num_queries + kBlock - 1) / kBlock, ResolveThreads(num_threads), [&](int64_t item) {
    const int64_t q0 = item * kBlock;
    ScanArgs args = DatabaseArgs(db);
    args.panel_begin = 0;
    args.panel_end = num_panels;
    args.queries = queries + q0 * db.dim;
    args.num_queries = static_cast<int32_t>(std::min(kBlock, num_queries - q0));
    args.k = 1;
    args.num_bins = 0;
    args.states = nullptr;
    args.raw_scores = out + q0 * out_stride;
    args.raw_stride = out_stride;
    scan(args);
  });
}

}  // namespace annlib
