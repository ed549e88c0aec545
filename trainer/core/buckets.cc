// Greedy bucket assignment (see buckets.h).
#include "trainer/core/buckets.h"

namespace trainguard {

std::vector<std::vector<size_t>> AssignBuckets(const std::vector<int64_t>& sizes_bytes, int64_t cap_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i = 0; i < sizes_bytes.size(); ++i) {
    if (buckets.empty() || (filled > 0 && filled + sizes_bytes[i] > cap_bytes)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += sizes_bytes[i];
  }
  return buckets;
}

}  // namespace trainguard
