// Distributed evaluation (see evaluate.h).
#include "trainer/evaluate.h"

#include "trainer/core/sharding.h"

namespace trainguard {

Accuracy Evaluate(Hw3Net& model, const Dataset& dataset, ControlPlane& control, torch::Device device,
                  int64_t batch_size, int64_t ignore_index, const LoaderOptions& loader,
                  const std::function<void()>& on_batch) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto shard = EvalShard(dataset.size(), control.rank(), control.world());
  // Counted on the device and read once at the end: no host synchronisation per batch.
  auto correct = torch::zeros({}, torch::TensorOptions(torch::kInt64).device(device));
  auto total = torch::zeros({}, torch::TensorOptions(torch::kInt64).device(device));
  ForEachBatch(dataset, shard, batch_size, ignore_index, loader, [&](const Batch& batch) {
    auto targets = batch.targets.to(device);
    auto predicted = model->forward(batch.images.to(device)).argmax(1);
    auto scored = targets.ge(0).logical_and(targets.lt(dataset.num_classes()));
    correct += predicted.eq(targets).logical_and(scored).sum();
    total += scored.sum();
    if (on_batch) on_batch();
  });
  std::vector<int64_t> counts{correct.item<int64_t>(), total.item<int64_t>()};
  control.AllReduceSum(counts);
  return {counts[0], counts[1]};
}

}  // namespace trainguard
