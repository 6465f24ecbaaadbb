// The brute-force index as one engine object (TPU-KNN style): every point
// scored by the dense kernels, the top k selected exactly or through L
// strided bins (recall_target < 1), over the saved arrays
// (index/index_format.h). Immutable once made; every method may be called
// from any thread.
//
// Like the partitioned index it takes queries as the caller has them (checked
// and prepared for the metric here), filters by user ids, and returns user
// ids with scores in the metric's sense (search/metric.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "../search/dense_search.h"
#include "../search/metric.h"
#include "../search/row_ids.h"
#include "../simd/dispatch.h"
#include "index_format.h"

namespace annlib {

struct DenseOptions {
  Metric metric = Metric::kDotProduct;
  DenseType type = DenseType::kFloat32;
  double recall_target = 1.0;                // 1 = exact top k; below: binned
  // The screen decision carried from an earlier version of the same data (an
  // update): -1 = unknown (checked on first use), else DenseIndex's kNoScreen,
  // kStagedScreen or kInt8Screen.
  int32_t screen_decision = -1;
  int32_t format_version = kFormatVersion;   // of the arrays (index_format.h)
};

// L = ceil((k-1) / -ln(recall_target)) strided bins, at least k (XLA's
// sizing); 0 = exact selection (recall_target 1).
int32_t NumBinsFor(double recall_target, int32_t k);

// A filter over ids as a bitmask over points, made once (Compile).
struct DenseFilter {
  std::vector<uint64_t> bits;  // a bit per point of every panel
  int64_t count = 0;           // points allowed
};

class DenseIndex {
 public:
  DenseIndex(const DenseArrays& arrays, const DenseOptions& options, SimdLevel level, Bf16Variant variant);

  // queries [nq][dim] -> out_ids [nq][k] user ids, out_scores in the metric's
  // sense; -1 / worst-score padding when fewer than k points are allowed.
  // filter: nullptr, or made by Compile.
  void Search(const float* queries, int64_t nq, int32_t k, int num_threads, const DenseFilter* filter,
              int64_t* out_ids, float* out_scores) const;

  // Throws unless 1 <= k <= the points held (before k results per query are allocated).
  void CheckK(int32_t k) const;

  DenseFilter Compile(const IdFilter& allow, const IdFilter& deny) const;

  int32_t num_bins(int32_t k) const;  // 0 = exact
  // Whether binned float32 searches pick bin winners with one of the kernels'
  // cheaper screens (decided once, on first use): an int8 copy of the data (the
  // x86 kernels: AVX2, AVX-512, AMX tiles; any call) where its check on a sample
  // of this data loses at most 0.5% of the float32 winners; else a fine staged
  // screen (AMX bf16x3, ~2^-16, batches of 64+ queries per thread), unchecked;
  // else a coarse staged screen (one bf16 product, 2^-7; 16+ queries per thread)
  // where its check passes. A coarse screen runs with as many bins as the
  // sample's or more (Scan: below k = 10 the int8 copy takes the sample's bins,
  // a staged screen is not used).
  bool ScreenKeepsRecall(int num_threads) const;
  // That decision where made (or carried): kScreenUnknown (not yet), kNoScreen,
  // kStagedScreen or kInt8Screen.
  int32_t screen_decision() const { return screen_decision_.load(std::memory_order_acquire); }
  static constexpr int32_t kScreenUnknown = -1, kNoScreen = 0, kStagedScreen = 1, kInt8Screen = 2;
  int64_t size() const { return view_.n; }
  int32_t dim() const { return view_.dim; }
  Metric metric() const { return options_.metric; }
  const char* simd_level() const { return kernels_->level_name; }

 private:
  void Scan(const float* queries, int64_t nq, int32_t k, int32_t bins, int num_threads, const uint64_t* allowed,
            int64_t* out_rows, float* out_scores) const;

  int32_t ChooseScreen(int num_threads) const;  // the decision, made once
  // A staged screen fine enough to need no check (AMX bf16x3).
  bool FineScreen() const;
  void PrepareStagedScreen(int num_threads) const;
  bool PrepareInt8Copy(int num_threads) const;  // false where it cannot be made
  bool MeasureScreen(const DenseView& screened, int num_threads) const;

  DenseOptions options_;
  const DenseKernels* kernels_;
  DenseKernels unscreened_;  // *kernels_ without the screens
  // Set once by ChooseScreen: the decision (unless carried) and the views
  // screened scans read: the staged screen's (with each point's bf16 residual
  // for a bf16 screen) and the int8 screen's (view_ with its int8 copy).
  mutable std::once_flag screen_checked_;
  mutable std::atomic<int32_t> screen_decision_{kScreenUnknown};
  mutable std::vector<float> bf16_residuals_;
  mutable DenseView staged_view_;
  mutable Int8Copy int8_copy_;
  mutable DenseView int8_view_;
  DenseView view_;
  RowIds ids_;
  bool custom_ids_ = false;
};

}  // namespace annlib
