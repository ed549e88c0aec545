// Prediction and the submission CSV (see predict.h).
#include "trainer/predict.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "trainer/core/sharding.h"

namespace trainguard {

std::vector<std::pair<int64_t, int64_t>> PredictAll(Hw3Net& model, const Dataset& dataset, ControlPlane& control,
                                                    torch::Device device, int64_t batch_size,
                                                    const LoaderOptions& loader) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto shard = EvalShard(dataset.size(), control.rank(), control.world());
  std::ostringstream mine;
  // Predictions need no targets: any ignore index will do.
  ForEachBatch(dataset, shard, batch_size, -1, loader, [&](const Batch& batch) {
    const auto classes = model->forward(batch.images.to(device)).argmax(1).to(torch::kCPU);
    const auto cls = classes.accessor<int64_t, 1>();
    for (size_t r = 0; r < batch.indices.size(); ++r)
      mine << batch.indices[r] << ' ' << cls[static_cast<int64_t>(r)] << '\n';
  });
  std::vector<std::pair<int64_t, int64_t>> all;
  for (const std::string& part : control.AllGather(mine.str())) {
    std::istringstream in(part);
    int64_t index, cls;
    while (in >> index >> cls) all.emplace_back(index, cls);
  }
  std::sort(all.begin(), all.end());
  return all;
}

std::string SubmissionCsv(const Dataset& dataset, const std::vector<std::pair<int64_t, int64_t>>& predictions) {
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const auto& [index, cls] : predictions) {
    std::string id = dataset.source(index);
    id = id.substr(id.find_last_of('/') + 1);
    id = id.substr(0, id.find_last_of('.'));
    rows.emplace_back(id, cls);
  }
  std::sort(rows.begin(), rows.end());
  std::string csv = "Id,Category\n";
  for (const auto& [id, cls] : rows) csv += id + "," + std::to_string(cls) + "\n";
  return csv;
}

std::string PredictionSummary(const Dataset& dataset, const std::vector<std::pair<int64_t, int64_t>>& predictions) {
  int64_t unlabelled = 0;
  std::map<int64_t, int64_t> per_class;
  for (const auto& [index, cls] : predictions) {
    const RawLabel label = dataset.label(index);
    unlabelled += !label.value && label.text.empty();
    ++per_class[cls];
  }
  std::ostringstream out;
  out << "predicted " << predictions.size() << " images, " << unlabelled
      << " of them unlabelled (no class in the file name: they take no part in label validation or loss)\n"
      << "predictions per class:";
  for (const auto& [cls, count] : per_class) out << ' ' << cls << ':' << count;
  out << '\n';
  return out.str();
}

}  // namespace trainguard
