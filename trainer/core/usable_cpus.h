// How many CPUs this process may really use: the host's count overstates it inside a pod with a
// CPU limit or a Slurm task with a CPU set.
#pragma once

#include <cstdint>

namespace trainguard {

// The CPUs of this process's affinity set, bounded by its cgroup's CPU quota (cgroup v2
// cpu.max, or v1 cpu.cfs_quota_us over cpu.cfs_period_us, rounded up); at least 1.
int UsableCpus();

// The CPUs a quota of `quota_us` per `period_us` allows, rounded up; 0 when it sets no limit
// (quota <= 0, as v1's -1 and v2's "max" mean). Pure.
int QuotaCpus(int64_t quota_us, int64_t period_us);

}  // namespace trainguard
