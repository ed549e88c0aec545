// Deciding which gradients travel together in one all-reduce (the doing is in
// comm/grad_reducer). Like c10d's compute_bucket_assignment_by_size: parameters are taken in
// the order their gradients become ready (the reverse of registration for a feed-forward
// network) and packed greedily into buckets of at most cap_bytes; a parameter larger than the
// cap gets a bucket of its own. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace trainguard {

// sizes_bytes[i]: size of parameter i in bytes, i in ready order. Returns the buckets as lists
// of indices into sizes_bytes, each list in ready order; every index appears exactly once.
std::vector<std::vector<size_t>> AssignBuckets(const std::vector<int64_t>& sizes_bytes, int64_t cap_bytes);

}  // namespace trainguard
