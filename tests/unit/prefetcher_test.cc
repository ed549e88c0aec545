// BatchPrefetcher: batches come in order whatever the threads, the window bounds how far
// workers build ahead, and a worker's error surfaces at its own batch. ForEachBatch visits a
// sample list in order.
#include "trainer/data/prefetcher.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "trainer/data/synthetic.h"

namespace trainguard {
namespace {

Batch Numbered(int64_t b) {
  Batch batch;
  batch.indices = {b};
  return batch;
}

TEST(Prefetcher, HandsOutBatchesInOrder) {
  for (int threads : {0, 1, 3}) {
    BatchPrefetcher p(
        [](int64_t b) {
          std::this_thread::sleep_for(std::chrono::microseconds((7 - b % 7) * 200));  // finish out of order
          return Numbered(b);
        },
        2, 20, threads, 4);
    for (int64_t b = 2; b < 20; ++b) EXPECT_EQ(p.Next().indices[0], b) << threads << " threads";
  }
}

TEST(Prefetcher, BuildsNoFurtherAheadThanTheWindow) {
  std::atomic<int64_t> highest{-1};
  BatchPrefetcher p(
      [&](int64_t b) {
        highest = std::max<int64_t>(highest, b);
        return Numbered(b);
      },
      0, 100, 3, 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(highest.load(), 3) << "nothing handed out yet: at most batches 0..3 are built";
  p.Next();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(highest.load(), 4);
}

TEST(Prefetcher, EveryThreadBuildsEvenWhenTheWindowIsSmaller) {
  std::mutex mutex;
  int busy = 0, most_busy = 0;
  BatchPrefetcher p(
      [&](int64_t b) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          most_busy = std::max(most_busy, ++busy);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        std::lock_guard<std::mutex> lock(mutex);
        --busy;
        return Numbered(b);
      },
      0, 8, 4, 1);
  for (int64_t b = 0; b < 8; ++b) EXPECT_EQ(p.Next().indices[0], b);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(most_busy, 4) << "a window of 1 must not leave 3 of 4 threads idle";
}

TEST(Prefetcher, ForEachBatchVisitsEverySampleInOrderWhateverTheThreads) {
  auto data = MakeSyntheticDataset({50, 3, {1, 32, 32}, 1, 0.5, {}});
  std::vector<int64_t> samples;
  for (int64_t i = 49; i >= 0; i -= 2) samples.push_back(i);  // 25 samples, any order
  for (int threads : {0, 3}) {
    std::vector<int64_t> seen, sizes;
    ForEachBatch(*data, samples, 10, -1, {threads, 1, false}, [&](const Batch& b) {
      seen.insert(seen.end(), b.indices.begin(), b.indices.end());
      sizes.push_back(b.images.size(0));
    });
    EXPECT_EQ(seen, samples) << threads << " threads";
    EXPECT_EQ(sizes, (std::vector<int64_t>{10, 10, 5})) << threads << " threads";
  }
}

TEST(Prefetcher, AWorkersErrorSurfacesAtItsBatch) {
  BatchPrefetcher p(
      [](int64_t b) {
        if (b == 3) throw std::runtime_error("unreadable image x.jpg");
        return Numbered(b);
      },
      0, 10, 2, 4);
  EXPECT_EQ(p.Next().indices[0], 0);
  EXPECT_EQ(p.Next().indices[0], 1);
  EXPECT_EQ(p.Next().indices[0], 2);
  EXPECT_THROW(p.Next(), std::runtime_error);
}

TEST(Prefetcher, WorkersRunTorchOpsAloneAndLeaveTheProcessSettingAsItWas) {
  const int before = at::get_num_threads();
  at::set_num_threads(3);
  std::mutex mutex;
  std::vector<int> seen;
  {
    BatchPrefetcher p(
        [&](int64_t b) {
          std::lock_guard<std::mutex> lock(mutex);
          seen.push_back(at::get_num_threads());
          return Numbered(b);
        },
        0, 6, 2, 2);
    for (int b = 0; b < 6; ++b) p.Next();
    EXPECT_EQ(at::get_num_threads(), 3) << "the constructing thread keeps its count";
    int later = 0;
    std::thread([&] { later = at::get_num_threads(); }).join();
    EXPECT_EQ(later, 3) << "threads started later begin with the process-wide count";
  }
  EXPECT_EQ(seen, std::vector<int>(6, 1));
  at::set_num_threads(before);
}

}  // namespace
}  // namespace trainguard
