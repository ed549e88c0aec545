// Sharding of a dataset across ranks, with the semantics of PyTorch's DistributedSampler
// (drop_last=false): each epoch the indices 0..n-1 are shuffled from (seed, epoch), padded by
// repeating from the start until the count divides by the world size, and rank r takes every
// world-th index starting at r. Shards are disjoint apart from the padding, cover every
// sample, have equal size on every rank (so every rank runs the same number of steps), and
// depend only on (n, rank, world, seed, epoch, excluded). Samples set aside (the quarantine of
// bad samples) leave the shuffled order before padding and striding, so the others keep their
// order: a run that sets a sample aside at step S trains exactly as one that excluded it from
// the start, up to S and after. Pure: no Torch, no MPI.
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
  std::vector<int64_t> excluded;  // sorted dataset indices never trained on (may hold indices >= num_samples)
};

// Indices of this rank's training shard for one epoch, in visiting order.
// Requires at least one sample left after the exclusion, world > 0 and 0 <= rank < world.
std::vector<int64_t> TrainShard(const ShardSpec& spec);

// How many leading entries of a rank's training shard are not padding (padding, when there is
// any, is the last entry).
int64_t UniqueShardEntries(int64_t num_samples, int rank, int world);

// How many of 0..num_samples-1 the sorted `excluded` leaves in.
int64_t KeptSamples(int64_t num_samples, const std::vector<int64_t>& excluded);

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
