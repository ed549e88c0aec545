// What a dataset says about one sample without decoding it: an id, where it came from, and
// its label exactly as the source gave it. Label validation judges RawLabel; nothing here
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

struct SampleInfo {
  int64_t id = 0;      // stable index of the sample in its dataset
  std::string source;  // file path, or "file#index" for samples packed in one file
  RawLabel label;
};

}  // namespace trainguard
