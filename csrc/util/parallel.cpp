// The persistent thread pool behind ParallelFor.
//
// A call is a Job: an item counter shared by the calling thread and up to
// threads - 1 helpers. The caller posts that many tickets to the pool's queue
// and works through the items itself; an idle worker that takes a ticket
// joins the job while it is open. When the items run out the caller closes
// the job (no helper joins after that) and waits for the helpers that joined,
// polling its CallControl meanwhile. Several calls (from several Python
// threads) share the pool; a ticket whose job has closed is dropped.
#include "parallel.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif
#ifdef _WIN32
#include <process.h>
#define ANNLIB_GETPID _getpid
#else
#include <unistd.h>
#define ANNLIB_GETPID getpid
#endif

#include "cancel.h"

namespace annlib {

int AvailableCores() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  // Fails (EINVAL) only where the kernel's mask exceeds CPU_SETSIZE (1,024
  // CPUs); every hardware thread is the answer then.
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
#endif
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

namespace detail {
namespace {

struct Job {
  int64_t n;
  ItemFn call;
  void* fn;
  CallControl* control;  // the caller's, or nullptr
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;  // guards the fields below
  std::condition_variable idle;
  int active = 0;    // helpers working on it now
  int joined = 0;    // helpers that joined (their thread numbers are 1..joined)
  bool closed = false;
  std::exception_ptr error;

  // Runs items until none is left, the call must stop, or an item throws.
  void RunItems(int thread) {
    while (!stop.load(std::memory_order_relaxed)) {
      if (control != nullptr && control->StopRequested()) {
        stop.store(true, std::memory_order_relaxed);
        return;
      }
      const int64_t item = next.fetch_add(1, std::memory_order_relaxed);
      if (item >= n) return;
      try {
        call(fn, item, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        stop.store(true, std::memory_order_relaxed);
      }
    }
  }
};

// Worker threads beyond this many are not created (a call asking for more
// threads gets its extra tickets served by the workers there are).
int MaxWorkers() { return std::max(256, 4 * ResolveThreads(0)); }

class Pool {
 public:
  Pool() : pid_(ANNLIB_GETPID()) {}

  // The process's pool: after a fork the child gets a fresh one (the parent's
  // workers do not exist there, and its locks may be held); the old one is
  // leaked, as the process's pool always is (workers outlive static destructors).
  static Pool& Get() {
    static std::atomic<Pool*> pool{new Pool};
    Pool* p = pool.load(std::memory_order_acquire);
    if (p->pid_ != ANNLIB_GETPID()) {
      static std::mutex replace;
      std::lock_guard<std::mutex> lock(replace);
      p = pool.load(std::memory_order_acquire);
      if (p->pid_ != ANNLIB_GETPID()) {
        p = new Pool;
        pool.store(p, std::memory_order_release);
      }
    }
    return *p;
  }

  void Post(const std::shared_ptr<Job>& job, int tickets) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int t = 0; t < tickets; ++t) queue_.push_back(job);
    const int wanted = std::min<int>(MaxWorkers(), busy_ + static_cast<int>(queue_.size()));
    while (static_cast<int>(workers_.size()) < wanted) {
      workers_.emplace_back([this] { Work(); });
      workers_.back().detach();
    }
    ready_.notify_all();
  }

 private:
  void Work() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      Help(*job);
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_;
    }
  }

  static void Help(Job& job) {
    int thread;
    {
      std::lock_guard<std::mutex> lock(job.mutex);
      if (job.closed || job.stop.load(std::memory_order_relaxed)) return;
      ++job.active;
      thread = ++job.joined;
    }
    CallControl* const saved = CallControl::Current();
    CallControl::SetCurrent(job.control);  // long items check their caller's control
    job.RunItems(thread);
    CallControl::SetCurrent(saved);
    std::lock_guard<std::mutex> lock(job.mutex);
    if (--job.active == 0) job.idle.notify_all();
  }

  const long pid_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
  int busy_ = 0;
};

}  // namespace

void RunParallel(int64_t n, int num_threads, ItemFn call, void* fn) {
  if (n <= 0) return;
  CallControl* control = CallControl::Current();
  const int threads = static_cast<int>(std::min<int64_t>(ResolveThreads(num_threads), n));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) {
      if (control != nullptr && control->StopRequested()) throw Cancelled(control->reason());
      call(fn, i, 0);
    }
    return;
  }
  auto job = std::make_shared<Job>();
  job->n = n;
  job->call = call;
  job->fn = fn;
  job->control = control;
  Pool::Get().Post(job, threads - 1);
  job->RunItems(0);
  {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->closed = true;  // from now on no helper joins: fn may go out of scope once they are done
    while (job->active > 0) {
      job->idle.wait_for(lock, CallControl::kPollInterval);
      if (control != nullptr && job->active > 0) {
        lock.unlock();
        if (control->StopRequested()) job->stop.store(true, std::memory_order_relaxed);
        lock.lock();
      }
    }
  }
  if (job->error) std::rethrow_exception(job->error);
  if (job->stop.load(std::memory_order_relaxed) && control != nullptr && control->reason() != StopReason::kNone)
    throw Cancelled(control->reason());
}

}  // namespace detail
}  // namespace annlib
