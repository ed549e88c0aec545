// Strict label parsing (see sample.h).
#include "trainer/core/sample.h"

#include <charconv>

namespace trainguard {

RawLabel ParseLabelText(const std::string& text) {
  RawLabel label{std::nullopt, text};
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, value);
  if (!text.empty() && err == std::errc() && ptr == end) label.value = value;
  return label;
}

}  // namespace trainguard
