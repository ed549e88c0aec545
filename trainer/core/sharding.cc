// DistributedSampler-style sharding (see sharding.h).
#include "trainer/core/sharding.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "trainer/core/seeded_random.h"

namespace trainguard {

std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  SeededRandom rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const auto j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

int64_t UniqueShardEntries(int64_t entries, int rank, int world) {
  return entries > rank ? (entries - rank + world - 1) / world : 0;
}

int64_t TrainShardSize(int64_t entries, int world) { return (entries + world - 1) / world; }

int64_t TrainedEntries(int64_t start, int64_t steps, int64_t batch_size, int world, int64_t kept) {
  return std::min(kept, start + steps * batch_size * world);
}

int64_t KeptSamples(int64_t num_samples, const std::vector<int64_t>& excluded) {
  int64_t left = num_samples;
  for (size_t k = 0; k < excluded.size(); ++k) {
    const bool repeat = k > 0 && excluded[k] == excluded[k - 1];
    if (!repeat && excluded[k] >= 0 && excluded[k] < num_samples) --left;
  }
  return left;
}

std::vector<int64_t> TrainShard(const ShardSpec& s) {
  const int64_t kept = KeptSamples(s.num_samples, s.excluded);
  if (kept <= 0 || s.world <= 0 || s.rank < 0 || s.rank >= s.world || s.start < 0 || s.start > kept) {
    throw std::invalid_argument(
        "TrainShard: need a sample left after the exclusion, 0 <= rank < world and 0 <= start <= kept");
  }
  std::vector<int64_t> order;
  if (s.shuffle) {
    // Mix the epoch into the seed so that each epoch has its own order.
    order = SeededPermutation(s.num_samples, s.seed * 0x100000001b3ULL + static_cast<uint64_t>(s.epoch));
  } else {
    order.resize(static_cast<size_t>(s.num_samples));
    std::iota(order.begin(), order.end(), 0);
  }
  if (kept < s.num_samples) {
    order.erase(std::remove_if(order.begin(), order.end(),
                               [&](int64_t i) { return std::binary_search(s.excluded.begin(), s.excluded.end(), i); }),
                order.end());
  }
  const int64_t shard = TrainShardSize(kept - s.start, s.world);
  const int64_t end = s.start + shard * s.world;
  for (int64_t i = kept; i < end; ++i) {  // pad by repeating from the epoch's start
    order.push_back(order[static_cast<size_t>((i - kept) % kept)]);
  }
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(shard));
  for (int64_t i = s.start + s.rank; i < end; i += s.world) mine.push_back(order[static_cast<size_t>(i)]);
  return mine;
}

std::vector<int64_t> EvalShard(int64_t num_samples, int rank, int world) {
  std::vector<int64_t> mine;
  for (int64_t i = rank; i < num_samples; i += world) mine.push_back(i);
  return mine;
}

int64_t StepsPerEpoch(int64_t shard_size, int64_t batch_size) { return (shard_size + batch_size - 1) / batch_size; }

}  // namespace trainguard
