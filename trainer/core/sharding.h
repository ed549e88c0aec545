// Sharding of a dataset across ranks, with the semantics of PyTorch's DistributedSampler
// (drop_last=false): each epoch the indices 0..n-1 are shuffled from (seed, epoch), padded by
// repeating from the start until the count divides by the world size, and rank r takes every
// world-th index starting at r. Shards are disjoint apart from the padding, cover every
// sample, have equal size on every rank (so every rank runs the same number of steps), and
// depend only on (n, rank, world, seed, epoch, excluded, start). Samples set aside (the
// quarantine of bad samples) leave the shuffled order before padding and striding, so the
// others keep their order: a run that sets a sample aside at step S trains exactly as one that
// excluded it from the start, up to S and after. A shard may begin part-way into the epoch's
// order (ShardSpec::start: the entries already trained, on any world size), so that a run
// resumed on another number of ranks trains the rest of the epoch: each remaining sample once,
// plus padding. Pure: no Torch, no MPI.
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
  int64_t start = 0;              // leading entries of the epoch's order already trained (0 <= start <= kept)
};

// Indices of this rank's training shard for one epoch, in visiting order. The epoch's order O
// holds the K kept samples (shuffled, the excluded ones removed); positions i >= K are padding,
// O[(i - K) % K] (repeated from the epoch's start). The shard covers the positions [start, T),
// T = start + ceil((K - start) / world) * world, and rank r takes start + r, start + r + world, ...
// With start = s * batch * world (s steps done on the same world) it is the tail of the
// start = 0 shard from entry s * batch. Requires a sample left after the exclusion, world > 0,
// 0 <= rank < world and 0 <= start <= K (start = K: an empty shard).
std::vector<int64_t> TrainShard(const ShardSpec& spec);

// How many leading entries of a rank's training shard are not padding (padding, when there is
// any, is the last entry). `entries`: the entries of the order the shard covers, K - start.
int64_t UniqueShardEntries(int64_t entries, int rank, int world);

// How many of 0..num_samples-1 the sorted `excluded` leaves in.
int64_t KeptSamples(int64_t num_samples, const std::vector<int64_t>& excluded);

// Size of every rank's training shard: ceil(entries / world), `entries` as for UniqueShardEntries.
int64_t TrainShardSize(int64_t entries, int world);

// How many leading entries of the epoch's order are trained after `steps` steps of `batch_size`
// per rank on `world` ranks from a shard that began at `start`: start + steps * batch_size *
// world, at most `kept` (K; the last step's padding trains no new entry).
int64_t TrainedEntries(int64_t start, int64_t steps, int64_t batch_size, int world, int64_t kept);

// Indices of this rank's evaluation shard: rank, rank + world, ... without shuffling or
// padding, so that every sample is counted exactly once across ranks (sizes may differ by one).
std::vector<int64_t> EvalShard(int64_t num_samples, int rank, int world);

// Optimizer steps per epoch for a shard: ceil(shard_size / batch_size); the last batch of
// an epoch may be smaller, and is the same size on every rank.
int64_t StepsPerEpoch(int64_t shard_size, int64_t batch_size);

// A permutation of 0..n-1 that depends only on (n, seed); the same on every platform.
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed);

}  // namespace trainguard
