// A writer-preferring reader-writer lock: searches share it, updates take it
// alone. Once a writer waits, new readers queue behind it, so a steady stream
// of searches cannot starve an update (glibc's rwlock prefers readers).
#pragma once
#include <condition_variable>
#include <mutex>

namespace annlib {

class RwLock {
 public:
  void lock_shared() {
    std::unique_lock<std::mutex> lock(mutex_);
    readable_.wait(lock, [&] { return !writer_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--readers_ == 0) writable_.notify_one();
  }
  void lock() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++writers_waiting_;
    writable_.wait(lock, [&] { return !writer_ && readers_ == 0; });
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
  std::mutex mutex_;
  std::condition_variable readable_, writable_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writer_ = false;
};

}  // namespace annlib
