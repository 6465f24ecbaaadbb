#include "dense_index.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <stdexcept>
#include <string>

#include "array_checks.h"
#include "../util/parallel.h"

namespace annlib {
namespace {

// Selection state is (k or L + 32) slots per query; a batch is searched in
// chunks that keep it within about this many bytes, however many queries.
constexpr int64_t kStateBytes = int64_t{256} << 20;

// A screen coarser than this is checked on the data before it is used.
constexpr double kFineScreenError = 1.0 / 4096;
// The check: held-out sample points as queries, their k best binned with and without
// the screen; the screen may lose at most this share of the float32 winners
// (3 of 640: the dev sets lose none, tightly clustered squared L2 ~3%).
constexpr int64_t kScreenSampleQueries = 64;
constexpr int32_t kScreenSampleK = 10;
constexpr double kScreenMaxLoss = 0.005;
// The int8 kernels' int32 sums: VNNI's offset query codes (up to 255 x 127 a
// product) overflow past about 66,000 dimensions and wrap back once corrected,
// exact while the true dot product (up to 127 x 127 x d) fits; the screen stays
// below the first limit.
constexpr int32_t kMaxInt8ScreenDim = 65536;
// The int8 dtype itself: exact int32 sums of up to 127 x 127 x d.
constexpr int64_t kMaxInt8Dim = 133144;

}  // namespace

int32_t NumBinsFor(double recall_target, int32_t k) {
  if (!(recall_target > 0.0 && recall_target <= 1.0))
    throw std::invalid_argument("recall_target must be in (0, 1], got " + std::to_string(recall_target));
  if (recall_target >= 1.0) return 0;
  const double bins = std::ceil((k - 1) / -std::log(recall_target));
  return static_cast<int32_t>(std::min<double>(std::max<double>(k, bins), 2147483647.0));
}

DenseIndex::DenseIndex(const DenseArrays& a, const DenseOptions& options, SimdLevel level, Bf16Variant variant)
    : options_(options), kernels_(&DenseKernelsFor(level, variant)), unscreened_(*kernels_) {
  unscreened_.screen_f32 = nullptr;
  unscreened_.int8_screen = false;
  if (options.screen_decision < kScreenUnknown || options.screen_decision > kInt8Screen)
    throw std::invalid_argument("screen_decision must be -1, 0, 1 or 2");
  screen_decision_.store(options.screen_decision, std::memory_order_relaxed);  // carried, or -1
  if (options.format_version < kOldestFormatVersion || options.format_version > kFormatVersion)
    throw std::invalid_argument("unknown index format version " + std::to_string(options.format_version));
  NumBinsFor(options.recall_target, 1);  // checks the target
  RequireLength("meta", a.meta, 2);
  if (a.meta[0] < 0 || a.meta[0] > kMaxRows || a.meta[1] <= 0 || a.meta[1] > kMaxDim)
    throw std::invalid_argument("array 'meta' holds bad index dimensions");
  view_.type = options.type;
  view_.n = a.meta[0];
  view_.dim = static_cast<int32_t>(a.meta[1]);
  if (view_.type == DenseType::kInt8 && view_.dim > kMaxInt8Dim)
    throw std::invalid_argument("int8 brute force holds at most " + std::to_string(kMaxInt8Dim) +
                                " dimensions (its integer sums), got " + std::to_string(view_.dim) +
                                "; use float32 or bfloat16");
  const int64_t padded = view_.num_panels() * kPanelWidth;
  RequireBytes("panels", a.panels, view_.num_panels() * PanelBytes(view_.type, view_.dim));
  view_.panels = a.panels.data;
  view_.bias = RequirePanelFloats("bias", a.bias, padded, view_.n);
  if (view_.type == DenseType::kInt8) {
    view_.scale = RequirePanelFloats("scale", a.scale, padded, view_.n);
    view_.offset = RequirePanelFloats("offset", a.offset, padded, view_.n);
    view_.scaled_sums = RequirePanelFloats("scaled_sums", a.scaled_sums, padded, view_.n);
    view_.sums = RequireLength("sums", a.sums, padded);
  }
  // Format 2 stores float32 norms; version 1 indexes without them rescore
  // the 2k best screened bin winners instead of bounding the screen's error.
  if (view_.type == DenseType::kFloat32 && (options.format_version >= 2 || a.norms.present()))
    view_.norms = RequirePanelFloats("norms", a.norms, padded, view_.n);
  custom_ids_ = a.ids.present();
  ids_.Reset(custom_ids_ ? RequireLength("ids", a.ids, view_.n) : nullptr, view_.n);
}

int32_t DenseIndex::num_bins(int32_t k) const {
  const int32_t bins = NumBinsFor(options_.recall_target, k);
  return bins >= view_.n ? 0 : bins;
}

bool DenseIndex::ScreenKeepsRecall(int num_threads) const {
  if (view_.type != DenseType::kFloat32 || options_.recall_target >= 1.0) return false;
  if (kernels_->screen_f32 == nullptr && !kernels_->int8_screen) return false;
  return ChooseScreen(num_threads) != kNoScreen;
}

bool DenseIndex::FineScreen() const {
  return kernels_->screen_f32 != nullptr && kernels_->screen_error <= kFineScreenError;
}

int32_t DenseIndex::ChooseScreen(int num_threads) const {
  std::call_once(screen_checked_, [&] {
    int32_t decision = screen_decision_.load(std::memory_order_relaxed);  // carried from an earlier version, or unknown
    const bool staged = kernels_->screen_f32 != nullptr;
    if (decision == kScreenUnknown) {
      decision = kNoScreen;
      if (kernels_->int8_screen && PrepareInt8Copy(num_threads) && MeasureScreen(int8_view_, num_threads)) {
        decision = kInt8Screen;
      } else if (FineScreen()) {
        decision = kStagedScreen;  // no check needed
      } else if (staged) {
        PrepareStagedScreen(num_threads);
        if (MeasureScreen(staged_view_, num_threads)) decision = kStagedScreen;
      }
    } else if (decision == kInt8Screen) {
      if (!kernels_->int8_screen || !PrepareInt8Copy(num_threads)) decision = FineScreen() ? kStagedScreen : kNoScreen;
    } else if (decision == kStagedScreen && !staged) {
      decision = kNoScreen;
    }
    if (decision == kStagedScreen) PrepareStagedScreen(num_threads);
    if (decision != kInt8Screen) int8_copy_ = Int8Copy();  // a refused copy's memory back
    screen_decision_.store(decision, std::memory_order_release);
  });
  return screen_decision_.load(std::memory_order_acquire);
}

void DenseIndex::PrepareStagedScreen(int num_threads) const {
  if (staged_view_.panels != nullptr) return;
  staged_view_ = view_;
  if (kernels_->screen_rounds_to_bf16 && view_.norms != nullptr) {
    bf16_residuals_.resize(view_.num_panels() * kPanelWidth);
    Bf16Residuals(view_, bf16_residuals_.data(), num_threads);
    staged_view_.bf16_residuals = bf16_residuals_.data();
  }
}

bool DenseIndex::PrepareInt8Copy(int num_threads) const {
  if (view_.dim > kMaxInt8ScreenDim || view_.n == 0) return false;
  try {
    MakeInt8Copy(view_, num_threads, &int8_copy_);
  } catch (const std::bad_alloc&) {  // a quarter of the data more: without it, no int8 screen
    int8_copy_ = Int8Copy();
    return false;
  }
  int8_view_ = view_;
  int8_view_.int8_copy = &int8_copy_.view;
  return true;
}

bool DenseIndex::MeasureScreen(const DenseView& screened, int num_threads) const {
  const int32_t k = static_cast<int32_t>(std::min<int64_t>(kScreenSampleK, view_.n));
  const int32_t bins = num_bins(k);
  const int64_t m = std::min(kScreenSampleQueries, view_.n / 2);
  if (bins == 0 || m == 0) return false;  // too few points to sample (and to need a screen)
  const int32_t dim = view_.dim;
  // Evenly spaced stored points (prepared for the metric) as queries, held
  // out of the search: a point found as its own nearest neighbour hides how
  // the screen ranks the neighbours real queries have (3-d Gaussian data lost
  // 2% of recall with its points as queries checking clean).
  std::vector<float> queries(m * dim);
  std::vector<uint64_t> allowed((view_.num_panels() * kPanelWidth + 127) / 64, 0);
  for (int64_t j = 0; j < view_.n; ++j) allowed[j >> 6] |= uint64_t{1} << (j & 63);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t j = i * view_.n / m;
    const float* x = PanelPoint(view_, j);
    for (int32_t t = 0; t < dim; ++t) queries[i * dim + t] = x[int64_t{t} * kPanelWidth];
    allowed[j >> 6] &= ~(uint64_t{1} << (j & 63));
  }
  // A staged screen runs only on blocks of screen_min_queries or more: the
  // sample is split over no more threads than leave each such a block.
  const int screened_threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(ResolveThreads(num_threads), m / std::max(1, kernels_->screen_min_queries))));
  std::vector<int64_t> plain_ids(m * k), screened_ids(m * k);
  std::vector<float> plain_scores(m * k), screened_scores(m * k);
  DenseSearch(view_, unscreened_, queries.data(), m, k, bins, num_threads, plain_ids.data(), plain_scores.data(),
              allowed.data());
  DenseSearch(screened, *kernels_, queries.data(), m, k, bins, screened_threads, screened_ids.data(),
              screened_scores.data(), allowed.data());
  // Both results are exactly scored, best first: a float32 winner is lost if
  // the screened result lacks it and ranks it above its own k-th.
  int64_t lost = 0;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t* got = screened_ids.data() + i * k;
    const float kth = screened_scores[i * k + k - 1];
    for (int32_t r = 0; r < k; ++r) {
      const int64_t id = plain_ids[i * k + r];
      if (id >= 0 && plain_scores[i * k + r] > kth && std::find(got, got + k, id) == got + k) ++lost;
    }
  }
  return static_cast<double>(lost) <= kScreenMaxLoss * static_cast<double>(m * k);
}

DenseFilter DenseIndex::Compile(const IdFilter& allow, const IdFilter& deny) const {
  DenseFilter f;
  f.count = ids_.FilterRows(allow, deny, &f.bits);  // n + 64 bits: every panel's 32 points covered
  return f;
}

void DenseIndex::Scan(const float* queries, int64_t nq, int32_t k, int32_t bins, int num_threads,
                      const uint64_t* allowed, int64_t* out_rows, float* out_scores) const {
  // Binned float32 calls may screen (ChooseScreen). A coarse screen runs with
  // as many bins as its check had or more: fewer bins hold more points each, so
  // a screen's near-ties would cost more winners (k = 1, one bin: the top 1).
  //  - The int8 copy screens any call; below k = 10 it takes the check's bins
  //    (more bins: a higher recall than the target asks) where the index holds
  //    more points than that. Single queries and batches alike.
  //  - A staged screen needs blocks of screen_min_queries, and a coarse one k
  //    of 10 or more (a single query, never staged, keeps k's own bins).
  // The check itself runs only for a call that could screen.
  const DenseView* view = &view_;
  const DenseKernels* kernels = &unscreened_;
  if (bins > 0 && view_.type == DenseType::kFloat32 && options_.recall_target < 1.0) {
    const int32_t check_bins = NumBinsFor(options_.recall_target, kScreenSampleK);
    const int32_t int8_bins = std::max(bins, check_bins);
    const bool int8_ok = kernels_->int8_screen && int8_bins < view_.n;
    const bool staged_ok = kernels_->screen_f32 != nullptr && nq >= kernels_->screen_min_queries &&
                           (FineScreen() || bins >= check_bins);
    if (int8_ok || staged_ok) {
      const int32_t screen = ChooseScreen(num_threads);
      if (screen == kInt8Screen && int8_ok) {
        view = &int8_view_;
        bins = int8_bins;
      }
      if (screen == kStagedScreen && staged_ok) view = &staged_view_;
      if (view != &view_) kernels = kernels_;
    }
  }
  const int64_t per_query = 8 * (bins == 0 ? k : int64_t{bins} + 32) * 2;  // score + id, doubled for splits
  const int64_t chunk = std::max<int64_t>(256, kStateBytes / per_query);
  for (int64_t q0 = 0; q0 < nq; q0 += chunk) {
    const int64_t m = std::min(chunk, nq - q0);
    DenseSearch(*view, *kernels, queries + q0 * view_.dim, m, k, bins, num_threads, out_rows + q0 * k,
                out_scores + q0 * k, allowed);
  }
}

void DenseIndex::CheckK(int32_t k) const {
  if (k < 1) throw std::invalid_argument("final_num_neighbors must be >= 1, got " + std::to_string(k));
  if (k > view_.n)
    throw std::invalid_argument("final_num_neighbors=" + std::to_string(k) + " exceeds the number of indexed points (" +
                                std::to_string(view_.n) + ")");
}

void DenseIndex::Search(const float* queries, int64_t nq, int32_t k, int num_threads, const DenseFilter* filter,
                        int64_t* out_ids, float* out_scores) const {
  CheckK(k);
  std::vector<float> normalized;
  const float* q = PrepareRows(queries, nq, view_.dim, options_.metric, nq == 1 ? "query" : "queries", &normalized);
  const int32_t bins = num_bins(k);
  const uint64_t* allowed = filter != nullptr ? filter->bits.data() : nullptr;
  Scan(q, nq, k, bins, num_threads, allowed, out_ids, out_scores);
  if (allowed != nullptr && bins > 0) {
    // Binned selection keeps one point per bin; a filter can leave fewer than
    // k bins with an allowed point, so those queries are selected exactly.
    const int64_t want = std::min<int64_t>(k, filter->count);
    std::vector<int64_t> short_queries;
    for (int64_t i = 0; i < nq; ++i) {
      int64_t found = 0;
      for (int32_t j = 0; j < k; ++j) found += out_ids[i * k + j] >= 0;
      if (found < want) short_queries.push_back(i);
    }
    if (!short_queries.empty()) {
      const int64_t m = static_cast<int64_t>(short_queries.size());
      std::vector<float> subset(m * view_.dim), sub_scores(m * k);
      std::vector<int64_t> sub_rows(m * k);
      for (int64_t j = 0; j < m; ++j)
        std::copy(q + short_queries[j] * view_.dim, q + (short_queries[j] + 1) * view_.dim,
                  subset.begin() + j * view_.dim);
      Scan(subset.data(), m, k, 0, num_threads, allowed, sub_rows.data(), sub_scores.data());
      for (int64_t j = 0; j < m; ++j) {
        std::copy(sub_rows.begin() + j * k, sub_rows.begin() + (j + 1) * k, out_ids + short_queries[j] * k);
        std::copy(sub_scores.begin() + j * k, sub_scores.begin() + (j + 1) * k, out_scores + short_queries[j] * k);
      }
    }
  }
  if (custom_ids_) ids_.ToIds(out_ids, nq * k);
  RawToMetric(options_.metric, q, nq, view_.dim, out_scores, k);
}

}  // namespace annlib
