// Seeded synthetic dataset (see synthetic.h).
#include "trainer/data/synthetic.h"

#include "trainer/core/sharding.h"

namespace trainguard {
namespace {

class Synthetic final : public Dataset {
 public:
  explicit Synthetic(SyntheticOptions o) : o_(std::move(o)) {
    const auto& s = o_.shape;
    torch::Generator gen = torch::make_generator<at::CPUGeneratorImpl>(o_.seed);
    prototypes_ = torch::randn({o_.classes, s.channels, s.height, s.width}, gen);
    // Balanced labels in a seeded order.
    const auto order = SeededPermutation(o_.samples, o_.seed + 1);
    labels_.resize(static_cast<size_t>(o_.samples));
    for (int64_t i = 0; i < o_.samples; ++i) labels_[static_cast<size_t>(order[i])] = i % o_.classes;
  }

  int64_t size() const override { return o_.samples; }
  ImageShape shape() const override { return o_.shape; }
  int64_t num_classes() const override { return o_.classes; }

  RawLabel label(int64_t i) const override {
    const auto it = o_.label_overrides.find(i);
    if (it != o_.label_overrides.end()) return it->second;
    const int64_t v = labels_[static_cast<size_t>(i)];
    return {v, std::to_string(v)};
  }
  std::string source(int64_t i) const override { return "synthetic#" + std::to_string(i); }

  ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest&) const override {
    const auto& s = o_.shape;
    auto out = torch::empty({static_cast<int64_t>(indices.size()), s.channels, s.height, s.width});
    for (size_t r = 0; r < indices.size(); ++r) {
      const int64_t i = indices[r];
      // Noise seeded by (seed, sample) so that a sample looks the same wherever it is drawn.
      torch::Generator gen = torch::make_generator<at::CPUGeneratorImpl>(o_.seed * 7919 + 1000003 * (i + 1));
      out[static_cast<int64_t>(r)] =
          prototypes_[labels_[static_cast<size_t>(i)]] + o_.noise * torch::randn({s.channels, s.height, s.width}, gen);
    }
    return {out, {}};
  }

 private:
  SyntheticOptions o_;
  torch::Tensor prototypes_;
  std::vector<int64_t> labels_;  // the true class of each sample (pixels follow it)
};

}  // namespace

std::unique_ptr<Dataset> MakeSyntheticDataset(const SyntheticOptions& options) {
  return std::make_unique<Synthetic>(options);
}

}  // namespace trainguard
