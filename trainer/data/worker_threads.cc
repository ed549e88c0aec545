// Worker threads with single-threaded torch ops (see worker_threads.h).
#include "trainer/data/worker_threads.h"

#include <ATen/Parallel.h>

#include <condition_variable>
#include <mutex>

namespace trainguard {

std::vector<std::thread> StartWorkerThreads(int count, const std::function<void()>& work) {
  std::vector<std::thread> threads;
  if (count <= 0) return threads;
  const int intra_op = at::get_num_threads();
  std::mutex mutex;
  std::condition_variable changed;
  int started = 0;
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&, work] {
      // Settling the thread's lazy initialisation first keeps the 1 when the process-wide
      // count is set again below.
      at::get_num_threads();
      at::set_num_threads(1);
      {
        // Notified under the lock: once `started` reaches `count` the starter may return and
        // destroy `mutex` and `changed`, so neither may be touched after the lock is released.
        std::lock_guard<std::mutex> lock(mutex);
        ++started;
        changed.notify_all();
      }
      work();
    });
  }
  // at::set_num_threads also set the process-wide count: once every worker has its own, put it
  // back (this thread's own count never changed).
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait(lock, [&] { return started == count; });
  at::set_num_threads(intra_op);
  return threads;
}

}  // namespace trainguard
