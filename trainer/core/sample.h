// What a dataset says about its samples without decoding them: where each came from, and its
// label exactly as the source gave it. Label validation judges RawLabel; nothing here
// turns a bad label into a valid class. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace trainguard {

struct RawLabel {
  std::optional<int64_t> value;  // the label as a number; empty when absent or unparsable
  std::string text;              // the label as written in the source ("3", "-1", "abc", "")
};

// Parses a label strictly: an optional '-' and decimal digits that fit int64 give a value
// ("-1", "11", "255"); anything else ("abc", "3.5", " 3", "99999999999999999999") keeps only its
// text, and "" means unlabelled. Nothing is rounded, clamped or defaulted into a valid class.
RawLabel ParseLabelText(const std::string& text);

// What label validation needs of a dataset: labels and where they came from, without pixels.
class SampleCatalog {
 public:
  virtual ~SampleCatalog() = default;
  virtual int64_t size() const = 0;
  // The label of sample i (0 <= i < size()) exactly as the source gives it; cheap.
  virtual RawLabel label(int64_t i) const = 0;
  // Where sample i comes from: a file path, or "file#index" for samples packed in one file.
  virtual std::string source(int64_t i) const = 0;
};

}  // namespace trainguard
