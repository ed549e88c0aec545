// Global-count cross-entropy (see loss.h).
#include "trainer/loss.h"

namespace trainguard {

torch::Tensor GlobalMeanCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                     int64_t ignore_index, int64_t global_valid_targets) {
  namespace F = torch::nn::functional;
  auto sum = F::cross_entropy(
      logits, targets, F::CrossEntropyFuncOptions().ignore_index(ignore_index).reduction(torch::kSum));
  return sum / static_cast<double>(std::max<int64_t>(global_valid_targets, 1));
}

}  // namespace trainguard
