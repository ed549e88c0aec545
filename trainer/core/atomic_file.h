// Whole-file reads and crash-safe writes. WriteFileAtomically writes a temporary file in the
// same folder, flushes it to disk, then renames it over the target: a reader sees the old file
// or the new one, never a mix, and a failed write (full disk, no permission) leaves the old file
// as it was and removes the temporary. Pure POSIX.
#pragma once

#include <string>

#include "trainer/core/errors.h"

namespace trainguard {

// A file could not be read or written; the message names the path and the OS reason.
class IoError : public Error {
 public:
  using Error::Error;
};

void WriteFileAtomically(const std::string& path, const std::string& bytes);

// Reads a whole file. Throws IoError when it cannot.
std::string ReadWholeFile(const std::string& path);

}  // namespace trainguard
