// A SampleCatalog from a list of label texts, for label-validation tests: sample i has label
// ParseLabelText(texts[i]) and source "file_<i>.jpg".
#pragma once

#include <string>
#include <vector>

#include "trainer/core/sample.h"

namespace trainguard::testing {

class LabelCatalog final : public SampleCatalog {
 public:
  explicit LabelCatalog(std::vector<std::string> texts) : texts_(std::move(texts)) {}
  int64_t size() const override { return static_cast<int64_t>(texts_.size()); }
  RawLabel label(int64_t i) const override { return ParseLabelText(texts_[static_cast<size_t>(i)]); }
  std::string source(int64_t i) const override { return "file_" + std::to_string(i) + ".jpg"; }

 private:
  std::vector<std::string> texts_;
};

// n labels cycling through 0..classes-1, as text.
inline std::vector<std::string> CyclingLabels(int64_t n, int64_t classes) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i % classes));
  return out;
}

}  // namespace trainguard::testing
