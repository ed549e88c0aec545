// CUDA architecture lists (see cuda_archs.h).
#include "trainer/core/cuda_archs.h"

#include <sstream>

namespace trainguard {

bool ArchListRuns(const std::string& archs, int major, int minor) {
  std::string spaced = archs;
  for (char& c : spaced) c = c == ';' ? ' ' : c;
  std::istringstream entries(spaced);
  for (std::string entry; entries >> entry;) {
    const bool ptx = entry.size() > 4 && entry.compare(entry.size() - 4, 4, "+PTX") == 0;
    int built_major = 0, built_minor = 0;
    char dot = 0;
    std::istringstream version(entry);
    if (!(version >> built_major >> dot >> built_minor) || dot != '.') continue;
    if (built_major == major && built_minor <= minor) return true;
    if (ptx && (built_major < major || (built_major == major && built_minor <= minor))) return true;
  }
  return false;
}

}  // namespace trainguard
