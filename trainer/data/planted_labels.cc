// Planted labels (see planted_labels.h).
#include "trainer/data/planted_labels.h"

namespace trainguard {
namespace {

class Planted final : public Dataset {
 public:
  Planted(std::unique_ptr<Dataset> inner, std::map<int64_t, RawLabel> planted)
      : inner_(std::move(inner)), planted_(std::move(planted)) {}
  int64_t size() const override { return inner_->size(); }
  ImageShape shape() const override { return inner_->shape(); }
  int64_t num_classes() const override { return inner_->num_classes(); }
  RawLabel label(int64_t i) const override {
    const auto it = planted_.find(i);
    return it == planted_.end() ? inner_->label(i) : it->second;
  }
  std::string source(int64_t i) const override { return inner_->source(i); }
  ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest& request) const override {
    return inner_->Images(indices, request);
  }

 private:
  std::unique_ptr<Dataset> inner_;
  std::map<int64_t, RawLabel> planted_;
};

}  // namespace

std::unique_ptr<Dataset> WithPlantedLabels(std::unique_ptr<Dataset> inner, std::map<int64_t, RawLabel> planted) {
  if (planted.empty()) return inner;
  return std::make_unique<Planted>(std::move(inner), std::move(planted));
}

}  // namespace trainguard
