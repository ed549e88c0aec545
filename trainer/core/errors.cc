// Helpers for building error messages.
#include "trainer/core/errors.h"

#include <cstring>

namespace trainguard {

std::string ErrnoMessage(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace trainguard
