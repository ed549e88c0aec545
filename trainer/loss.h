// Cross-entropy normalised by the GLOBAL count of valid targets: each rank sums the per-sample
// losses of its targets that are not ignore_index and divides by the count of valid targets
// over all ranks. Summing the ranks' gradients (GradReducer) then gives exactly the gradient of
// the mean loss over the global batch. A batch whose targets are all ignored contributes zero,
// never NaN (PyTorch's "mean" reduction gives NaN there).
#pragma once

#include <torch/torch.h>

namespace trainguard {

// This rank's summed cross-entropy over its targets that are not ignore_index (a scalar; 0 when
// all are ignored). logits [B, C], targets [B] int64.
torch::Tensor SummedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index);

// A rank's summed loss divided by the global count of valid targets (>= 0; 0 gives a zero loss).
torch::Tensor GlobalMean(const torch::Tensor& summed_loss, int64_t global_valid_targets);

// GlobalMean(SummedCrossEntropy(...)).
torch::Tensor GlobalMeanCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                                     int64_t global_valid_targets);

}  // namespace trainguard
