// Usable CPUs from the affinity set and the cgroup quota (see usable_cpus.h).
#include "trainer/core/usable_cpus.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace trainguard {
namespace {

int AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return static_cast<int>(std::thread::hardware_concurrency());
  return CPU_COUNT(&set);
}

// This process's cgroup path for the v1 `cpu` controller, or for the v2 hierarchy (v2: true).
std::string CgroupPath(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::istringstream names(controllers);
    bool cpu = false;
    for (std::string name; std::getline(names, name, ',');) cpu = cpu || name == "cpu";
    if (v2 ? controllers.empty() && line.compare(0, first, "0") == 0 : cpu) return line.substr(second + 1);
  }
  return "";
}

// The quota's CPUs of this process's cgroup, 0 when none is set or none can be read.
int CgroupQuotaCpus() {
  int64_t quota = 0, period = 0;
  const std::string v2 = CgroupPath(true);
  std::ifstream max("/sys/fs/cgroup" + v2 + "/cpu.max");
  std::string quota_text;
  if (max >> quota_text >> period) return quota_text == "max" ? 0 : QuotaCpus(std::stoll(quota_text), period);
  const std::string v1 = CgroupPath(false);
  for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    std::ifstream q(mount + v1 + "/cpu.cfs_quota_us"), p(mount + v1 + "/cpu.cfs_period_us");
    if (q >> quota && p >> period) return QuotaCpus(quota, period);
  }
  return 0;
}

}  // namespace

int QuotaCpus(int64_t quota_us, int64_t period_us) {
  if (quota_us <= 0 || period_us <= 0) return 0;
  return static_cast<int>((quota_us + period_us - 1) / period_us);
}

int UsableCpus() {
  int cpus = std::max(1, AffinityCpus());
  const int quota = CgroupQuotaCpus();
  if (quota > 0) cpus = std::min(cpus, quota);
  return cpus;
}

}  // namespace trainguard
