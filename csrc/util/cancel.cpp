#include "cancel.h"

#include <algorithm>

namespace annlib {
namespace {

std::atomic<uint64_t> g_interrupt_epoch{0};
thread_local CallControl* t_current = nullptr;
thread_local bool t_has_deadline = false;
thread_local CallControl::Clock::time_point t_deadline;

}  // namespace

CallControl::CallControl(PollFn poll)
    : previous_(t_current),
      poll_(poll),
      owner_(std::this_thread::get_id()),
      epoch_(g_interrupt_epoch.load(std::memory_order_relaxed)),
      has_deadline_(t_has_deadline),
      deadline_(t_deadline),
      last_poll_(Clock::now()) {
  t_current = this;
}

CallControl::~CallControl() { t_current = previous_; }

void CallControl::Stop(StopReason reason) {
  int none = 0;
  reason_.compare_exchange_strong(none, static_cast<int>(reason), std::memory_order_relaxed);
}

bool CallControl::StopRequested() {
  if (reason_.load(std::memory_order_relaxed) != 0) return true;
  if (g_interrupt_epoch.load(std::memory_order_relaxed) != epoch_) {
    Stop(StopReason::kInterrupted);
    return true;
  }
  const bool owner = std::this_thread::get_id() == owner_;
  if (!has_deadline_ && (poll_ == nullptr || !owner)) return false;
  const Clock::time_point now = Clock::now();
  if (has_deadline_ && now >= deadline_) {
    Stop(StopReason::kDeadline);
    return true;
  }
  if (poll_ != nullptr && owner && now - last_poll_ >= kPollInterval) {
    last_poll_ = now;
    if (poll_()) {
      poll_stopped_ = true;
      Stop(StopReason::kInterrupted);
      return true;
    }
  }
  return false;
}

CallControl* CallControl::Current() { return t_current; }

void CallControl::SetCurrent(CallControl* control) { t_current = control; }

void ThrowIfCancelled() {
  CallControl* control = t_current;
  if (control != nullptr && control->StopRequested()) throw Cancelled(control->reason());
}

void InterruptAllCalls() { g_interrupt_epoch.fetch_add(1, std::memory_order_relaxed); }

double SetThreadDeadline(double seconds) {
  double previous = -1.0;
  const CallControl::Clock::time_point now = CallControl::Clock::now();
  if (t_has_deadline) previous = std::max(0.0, std::chrono::duration<double>(t_deadline - now).count());
  t_has_deadline = seconds >= 0;
  if (t_has_deadline)
    t_deadline = now + std::chrono::duration_cast<CallControl::Clock::duration>(std::chrono::duration<double>(
                           std::min(seconds, 1e9)));  // far beyond any call, and no overflow
  return previous;
}

}  // namespace annlib
