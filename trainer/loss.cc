// Global-count cross-entropy (see loss.h).
#include "trainer/loss.h"

#include <algorithm>

namespace trainguard {

torch::Tensor SummedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(logits, targets,
                          F::CrossEntropyFuncOptions().ignore_index(ignore_index).reduction(torch::kSum));
}

torch::Tensor GlobalMean(const torch::Tensor& summed_loss, int64_t global_valid_targets) {
  return summed_loss / static_cast<double>(std::max<int64_t>(global_valid_targets, 1));
}

torch::Tensor GlobalMeanCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                                     int64_t global_valid_targets) {
  return GlobalMean(SummedCrossEntropy(logits, targets, ignore_index), global_valid_targets);
}

}  // namespace trainguard
