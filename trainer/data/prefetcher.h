// BatchPrefetcher: builds the batches of one epoch on a pool of threads into a bounded window
// of ready batches, handed out in order, so that a step does not wait while decoding keeps up.
// A worker's exception (an unreadable file under the "fail" policy) is rethrown by Next() for
// the batch it belongs to, on the training thread. With threads == 0 batches are built on the
// calling thread. Dataset::Images must be thread-safe (all datasets here are).
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "trainer/data/batch.h"
#include "trainer/data/worker_threads.h"

namespace trainguard {

class BatchPrefetcher {
 public:
  // Batches `first`..`count`-1, batch b built by make(b). `window`: batches built or being built
  // ahead of the one Next() hands out, at most; raised to `threads` so that no thread idles.
  BatchPrefetcher(std::function<Batch(int64_t)> make, int64_t first, int64_t count, int threads, int64_t window);
  ~BatchPrefetcher();  // stops and joins the workers
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next batch in order; blocks until it is ready.
  Batch Next();

 private:
  void Work();

  std::function<Batch(int64_t)> make_;
  const int64_t count_, window_;
  int64_t next_to_build_, next_to_hand_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  bool stop_ = false;
  std::vector<std::thread> workers_;  // last: they start once every member they use exists
};

// How batches are built ahead of their use: the --loader-threads / --prefetch settings.
struct LoaderOptions {
  int threads = 0;  // 0: on the calling thread
  int64_t window = 4;
  bool pin = false;  // pinned host memory, for asynchronous copies to a GPU
};

// Calls `use` with the batches of `samples` in order (batch_size rows each, the last one
// shorter; not augmented), built ahead as `loader` says. For evaluation and prediction.
void ForEachBatch(const Dataset& dataset, const std::vector<int64_t>& samples, int64_t batch_size, int64_t ignore_index,
                  const LoaderOptions& loader, const std::function<void(const Batch&)>& use);

}  // namespace trainguard
