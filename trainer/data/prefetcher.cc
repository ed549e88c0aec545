// Ordered, bounded batch prefetching (see prefetcher.h).
#include "trainer/data/prefetcher.h"

#include <algorithm>

namespace trainguard {

BatchPrefetcher::BatchPrefetcher(std::function<Batch(int64_t)> make, int64_t first, int64_t count, int threads,
                                 int64_t window)
    : make_(std::move(make)),
      count_(count),
      window_(std::max<int64_t>({window, threads, 1})),
      next_to_build_(first),
      next_to_hand_(first),
      workers_(StartWorkerThreads(threads, [this] { Work(); })) {}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& w : workers_) w.join();
}

void BatchPrefetcher::Work() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Build ahead only within the window after the batch the trainer waits for.
      changed_.wait(lock,
                    [&] { return stop_ || next_to_build_ >= count_ || next_to_build_ < next_to_hand_ + window_; });
      if (stop_ || next_to_build_ >= count_) return;
      b = next_to_build_++;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_(b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) {
        failed_[b] = error;
      } else {
        ready_[b] = std::move(batch);
      }
    }
    changed_.notify_all();
  }
}

Batch BatchPrefetcher::Next() {
  const int64_t b = next_to_hand_;
  if (workers_.empty()) {
    ++next_to_hand_;
    return make_(b);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return ready_.count(b) > 0 || failed_.count(b) > 0; });
  if (failed_.count(b) > 0) std::rethrow_exception(failed_[b]);
  Batch batch = std::move(ready_[b]);
  ready_.erase(b);
  ++next_to_hand_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

void ForEachBatch(const Dataset& dataset, const std::vector<int64_t>& samples, int64_t batch_size, int64_t ignore_index,
                  const LoaderOptions& loader, const std::function<void(const Batch&)>& use) {
  const auto size = static_cast<int64_t>(samples.size());
  const int64_t count = (size + batch_size - 1) / batch_size;
  BatchPrefetcher batches(
      [&](int64_t b) {
        Batch batch = MakeBatch(dataset, Slice(samples, b * batch_size, batch_size), ignore_index);
        if (loader.pin) batch.images = batch.images.pin_memory();
        return batch;
      },
      0, count, loader.threads, loader.window);
  for (int64_t b = 0; b < count; ++b) use(batches.Next());
}

}  // namespace trainguard
