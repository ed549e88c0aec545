// Sharding of a dataset across ranks, with the semantics of PyTorch's DistributedSampler
// (drop_last=false): each epoch the indices 0..n-1 are shuffled from (seed, epoch), padded by
// repeating from the start until the count divides by the world size, and rank r takes every
// world-th index starting at r. Shards are disjoint apart from the padding, cover every
// sample, have equal size on every rank (so every rank runs the same number of steps), and
// depend only on (n, rank, world, seed, epoch). Pure: no Torch, no MPI.
#pragma once

#include <cstdint>
#include <vector>

namespace trainguard {

struct ShardSpec {
  int64_t num_samples = 0;
  int rank = 0;
  int world = 1;
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool shuffle = true;
};

// Indices of this rank's training shard for one epoch, in visiting order.
// Requires num_samples > 0, world > 0 and 0 <= rank < world.
std::vector<int64_t> TrainShard(const ShardSpec& spec);

// How many leading entries of a rank's training shard are not padding (padding, when there is
// any, is the last entry).
int64_t UniqueShardEntries(int64_t num_samples, int rank, int world);

// Size of every rank's training shard: ceil(num_samples / world).
int64_t TrainShardSize(int64_t num_samples, int world);

// Indices of this rank's evaluation shard: rank, rank + world, ... without shuffling or
// padding, so that every sample is counted exactly once across ranks (sizes may differ by one).
std::vector<int64_t> EvalShard(int64_t num_samples, int rank, int world);

// Optimizer steps per epoch for a shard: ceil(shard_size / batch_size); the last batch of
// an epoch may be smaller, and is the same size on every rank.
int64_t StepsPerEpoch(int64_t shard_size, int64_t batch_size);

// A permutation of 0..n-1 that depends only on (n, seed); the same on every platform.
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed);

}  // namespace trainguard
