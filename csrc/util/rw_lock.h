// A writer-preferring reader-writer lock: searches share it, updates take it
// alone. Once a writer waits, new readers queue behind it, so a steady stream
// of searches cannot starve an update (glibc's rwlock prefers readers).
//
// A thread that must wait for the lock first runs the wait hooks, which the
// Python module sets to let go of the GIL for the wait: a thread holding the
// lock may need the GIL (a search polls for Ctrl-C under it), so a thread that
// waited for the lock with the GIL in hand could deadlock them both, whichever
// binding it came from.
#pragma once
#include <condition_variable>
#include <mutex>

namespace annlib {

struct LockWaitHooks {
  void* (*before)() = nullptr;      // returns a token for after()
  void (*after)(void*) = nullptr;
};

// Set once, when the module loads, before any lock is used.
inline LockWaitHooks& lock_wait_hooks() {
  static LockWaitHooks hooks;
  return hooks;
}

class RwLock {
 public:
  void lock_shared() {
    std::unique_lock<std::mutex> lock(mutex_);
    WaitUntil(lock, readable_, [&] { return !writer_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--readers_ == 0) writable_.notify_one();
  }
  void lock() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++writers_waiting_;
    WaitUntil(lock, writable_, [&] { return !writer_ && readers_ == 0; });
    --writers_waiting_;
    writer_ = true;
  }
  void unlock() {
    std::lock_guard<std::mutex> lock(mutex_);
    writer_ = false;
    if (writers_waiting_ > 0) {
      writable_.notify_one();
    } else {
      readable_.notify_all();
    }
  }

 private:
  // Returns with `lock` held and ready() true. The hooks run outside mutex_,
  // and ready() is checked again after them: the state may have changed while
  // the hook took the GIL back.
  template <class Ready>
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Ready ready) {
    while (!ready()) {
      const LockWaitHooks& hooks = lock_wait_hooks();
      lock.unlock();
      void* token = hooks.before != nullptr ? hooks.before() : nullptr;
      lock.lock();
      cv.wait(lock, ready);
      if (hooks.after == nullptr) return;
      lock.unlock();
      hooks.after(token);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable readable_, writable_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writer_ = false;
};

}  // namespace annlib
