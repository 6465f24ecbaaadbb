// Stopping long calls early: Ctrl-C, a time limit, or an interrupt of every
// running call.
//
// A binding that starts long work creates a CallControl on the calling
// thread. ParallelFor (util/parallel.h) checks it between work items on every
// thread of the call, and long items check it themselves (ThrowIfCancelled);
// once it says stop, no new item starts and the call throws Cancelled on the
// calling thread after its workers have stopped. On the calling thread the
// check also runs the control's poll now and then (every kPollInterval): the
// Python bindings acquire the GIL there and run Python's signal handlers, so
// Ctrl-C stops a call within a fraction of a second.
//
// Work that must not stop half-way (updates of an index) creates no control.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

namespace annlib {

enum class StopReason : int { kNone = 0, kInterrupted = 1, kDeadline = 2 };

struct Cancelled : std::runtime_error {
  StopReason reason;
  explicit Cancelled(StopReason r)
      : std::runtime_error(r == StopReason::kDeadline ? "the time limit passed before the work was done"
                                                      : "interrupted"),
        reason(r) {}
};

class CallControl {
 public:
  using Clock = std::chrono::steady_clock;
  // Returns true when the call must stop (e.g. a signal handler raised).
  using PollFn = bool (*)();
  static constexpr std::chrono::milliseconds kPollInterval{50};

  // Installs itself as the calling thread's control until destroyed; picks
  // up the thread's time limit (SetThreadDeadline).
  explicit CallControl(PollFn poll = nullptr);
  ~CallControl();
  CallControl(const CallControl&) = delete;
  CallControl& operator=(const CallControl&) = delete;

  // Whether the call should stop. On the owning thread it also polls when
  // kPollInterval has passed since the last poll.
  bool StopRequested();
  StopReason reason() const { return static_cast<StopReason>(reason_.load(std::memory_order_relaxed)); }
  void Stop(StopReason reason);
  // Whether the poll asked to stop (its error is then pending on the owner).
  bool poll_stopped() const { return poll_stopped_; }

  // The control of the call running on this thread (a worker of a
  // ParallelFor runs with its caller's), or nullptr.
  static CallControl* Current();
  static void SetCurrent(CallControl* control);

 private:
  CallControl* previous_;
  PollFn poll_;
  std::thread::id owner_;
  uint64_t epoch_;
  bool has_deadline_ = false;
  bool poll_stopped_ = false;
  Clock::time_point deadline_;
  Clock::time_point last_poll_;
  std::atomic<int> reason_{0};
};

// Throws Cancelled when the current call (if any) should stop.
void ThrowIfCancelled();

// Stops every call running now (async-signal-safe: one atomic increment).
void InterruptAllCalls();

// A time limit for the calls this thread starts from now on: seconds < 0
// removes it. Returns the previous limit's remaining seconds (< 0: none).
double SetThreadDeadline(double seconds);

}  // namespace annlib
