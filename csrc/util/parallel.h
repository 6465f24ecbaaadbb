// ParallelFor: runs fn(item, thread) for item in [0, n) on up to num_threads
// threads (0 = every core the process may run on: AvailableCores); thread is
// in [0, threads) and no two items run at once with the same thread number, so
// per-thread scratch can be indexed by it (fn(item) is accepted too).
//
// The calling thread is thread 0 and works too; the others come from one
// persistent pool (util/parallel.cpp), so a call creates no thread. Items are
// handed out by an atomic counter. The first exception thrown by any item is
// re-thrown on the calling thread after every worker has stopped. Between
// items every thread checks the call's CallControl (util/cancel.h): once it
// says stop, no new item starts and Cancelled is thrown.
#pragma once
#include <cstdint>
#include <type_traits>

namespace annlib {

// The cores this process may run on: its CPU affinity where the OS has one
// (Linux: taskset, cgroup cpusets, container CPU pinning), else every
// hardware thread. Asked on each call, so a changed affinity is seen.
int AvailableCores();

inline int ResolveThreads(int num_threads) { return num_threads > 0 ? num_threads : AvailableCores(); }

namespace detail {
using ItemFn = void (*)(void* fn, int64_t item, int thread);
void RunParallel(int64_t n, int threads, ItemFn call, void* fn);
}  // namespace detail

template <class Fn>
void ParallelFor(int64_t n, int num_threads, Fn&& fn) {
  using F = std::remove_reference_t<Fn>;
  detail::ItemFn call = [](void* f, int64_t item, int thread) {
    F& body = *static_cast<F*>(f);
    if constexpr (std::is_invocable_v<F&, int64_t, int>) {
      body(item, thread);
    } else {
      (void)thread;
      body(item);
    }
  };
  detail::RunParallel(n, num_threads, call, const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace annlib
