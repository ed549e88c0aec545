// This process's memory and its limit (see host_memory.h).
#include "trainer/core/host_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace trainguard {
namespace {

// The first number in `path`; 0 when the file is missing or says "max".
int64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  int64_t value = 0;
  if (!(in >> value)) return 0;
  return value;
}

}  // namespace

HostMemory ReadHostMemory() {
  HostMemory m;
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  {
    std::ifstream statm("/proc/self/statm");
    int64_t size = 0, resident = 0;
    if (statm >> size >> resident) m.resident_bytes = resident * page;
  }
  auto consider = [&m](int64_t bytes, const char* source) {
    if (bytes > 0 && (m.limit_bytes == 0 || bytes < m.limit_bytes)) {
      m.limit_bytes = bytes;
      m.limit_source = source;
    }
  };
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    consider(static_cast<int64_t>(as.rlim_cur), "address-space limit (ulimit -v)");
  }
  // v2 first, then v1 (whose "no limit" is a huge number, below the host's memory check).
  const int64_t host = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * page;
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const int64_t bytes = ReadNumber(path);
    if (bytes > 0 && bytes < host) consider(bytes, "cgroup memory limit");
  }
  consider(host, "host memory");
  return m;
}

std::string Bytes(int64_t bytes) {
  char text[32];
  const double gib = static_cast<double>(bytes) / (1LL << 30);
  if (gib >= 1) {
    std::snprintf(text, sizeof text, "%.1f GiB", gib);
  } else {
    std::snprintf(text, sizeof text, "%.0f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return text;
}

}  // namespace trainguard
