// Versions and the environment report (see build_info.h).
#include "launcher/build_info.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <cuda_runtime_api.h>
#include <jconfig.h>
#include <mpi.h>
#include <sys/utsname.h>
#include <torch/headeronly/version.h>
#include <torch/torch.h>

#include <CLI/Version.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "trainer/core/host_addresses.h"
#include "trainer/core/host_memory.h"
#include "trainer/core/usable_cpus.h"
#include "trainguard_commit.h"
#ifdef TRAINGUARD_WITH_NCCL
#include <torch/csrc/cuda/nccl.h>
#endif

extern char** environ;

namespace trainguard {
namespace {

#define TG_TEXT(x) TG_TEXT2(x)
#define TG_TEXT2(x) #x

// 12040 -> "12.4" (CUDA's encoding of its runtime and driver API versions).
std::string CudaVersion(int code) {
  if (code <= 0) return "none";
  return std::to_string(code / 1000) + "." + std::to_string((code % 1000) / 10);
}

// 90100 -> "9.1.0" (cuDNN 9's encoding: major * 10000 + minor * 100 + patch).
std::string CudnnVersion(long code) {
  if (code <= 0) return "none";
  return std::to_string(code / 10000) + "." + std::to_string((code % 10000) / 100) + "." + std::to_string(code % 100);
}

std::string Cudnn() {
  try {
    const auto& hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCuDNN()) return "none in this Torch build";
    return CudnnVersion(hooks.versionCuDNN()) + " (runs " + CudnnVersion(hooks.versionRuntimeCuDNN()) + ")";
  } catch (const std::exception&) {
    return "unknown (the CUDA libraries did not load)";
  }
}

std::string Nccl() {
#ifdef TRAINGUARD_WITH_NCCL
  try {
    const uint64_t code = torch::cuda::nccl::version();  // Torch packs major << 32 | minor << 16 | patch
    return std::to_string(code >> 32) + "." + std::to_string((code >> 16) & 0xffff) + "." +
           std::to_string(code & 0xffff);
  } catch (const std::exception&) {
    return "unknown (libnccl did not load)";
  }
#else
  return "none (built without the NCCL plane)";
#endif
}

std::string MpiLibrary() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int length = 0;
  MPI_Get_library_version(text, &length);  // allowed before MPI_Init
  std::string line(text, static_cast<size_t>(length));
  return line.substr(0, line.find_first_of(",\n"));
}

// The NVIDIA kernel driver's version (the first line of /proc/driver/nvidia/version), or "".
std::string NvidiaDriver() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(in, line)) return "";
  const auto at = line.find("Kernel Module");
  if (at == std::string::npos) return line;
  std::string rest = line.substr(at + 14);
  return rest.substr(0, rest.find(' '));
}

std::string Gpus() {
  int driver = 0;
  cudaDriverGetVersion(&driver);
  if (!torch::cuda::is_available()) {
    return "GPUs: none (no CUDA device visible to this process" + std::string(driver > 0 ? "" : "; no NVIDIA driver") +
           ")\n";
  }
  std::string out = "GPUs: " + std::to_string(torch::cuda::device_count()) + ", NVIDIA driver " + NvidiaDriver() +
                    " (CUDA " + CudaVersion(driver) + ")\n";
  for (int d = 0; d < static_cast<int>(torch::cuda::device_count()); ++d) {
    const auto* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(d));
    char line[512];  // the name is at most 256 bytes
    std::snprintf(line, sizeof line, "  cuda:%d %s, compute capability %d.%d, %s, bus id %04x:%02x:%02x.0\n", d,
                  p->name, p->major, p->minor, Bytes(static_cast<int64_t>(p->totalGlobalMem)).c_str(), p->pciDomainID,
                  p->pciBusID, p->pciDeviceID);
    out += line;
  }
  return out;
}

std::string Variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// Where this process sits in an MPI job, from its launcher's variables (MPI is not started).
std::string RankLayout() {
  if (!Variable("OMPI_COMM_WORLD_SIZE").empty()) {
    return "MPI: rank " + Variable("OMPI_COMM_WORLD_RANK") + " of " + Variable("OMPI_COMM_WORLD_SIZE") +
           ", local rank " + Variable("OMPI_COMM_WORLD_LOCAL_RANK") + " of " + Variable("OMPI_COMM_WORLD_LOCAL_SIZE") +
           " (started by mpirun)\n";
  }
  if (!Variable("SLURM_PROCID").empty() && !Variable("PMIX_RANK").empty()) {
    return "MPI: rank " + Variable("SLURM_PROCID") + " of " + Variable("SLURM_NTASKS") + ", local rank " +
           Variable("SLURM_LOCALID") + " (started by srun)\n";
  }
  return "MPI: not started by mpirun or srun (a run of one rank)\n";
}

// The variables trainguard and its scripts read, as set: the scheduler's, Kubernetes', the
// threads', CUDA's, NCCL's and trainguard's own.
std::string Variables() {
  static const char* const kPrefixes[] = {"TRAINGUARD_",
                                          "SLURM_JOB_ID",
                                          "SLURM_JOB_NAME",
                                          "SLURM_NTASKS",
                                          "SLURM_CPUS_PER_TASK",
                                          "SLURM_RESTART_COUNT",
                                          "SLURM_JOB_NODELIST",
                                          "KUBERNETES_SERVICE_HOST",
                                          "OMP_NUM_THREADS",
                                          "CUDA_VISIBLE_DEVICES",
                                          "NCCL_",
                                          "TORCH_NCCL_",
                                          "TG_"};
  std::string out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    for (const char* prefix : kPrefixes) {
      if (entry.rfind(prefix, 0) == 0) {
        out += "  " + entry + "\n";
        break;
      }
    }
  }
  return "variables:" + (out.empty() ? std::string(" none of the scheduler's or trainguard's\n") : "\n" + out);
}

}  // namespace

std::string VersionText() {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  std::string out = "trainguard " TRAINGUARD_VERSION " (commit " TRAINGUARD_COMMIT ")\n";
  out += "  libtorch " TORCH_VERSION "\n";
  out += "  CUDA runtime: built " + CudaVersion(CUDART_VERSION) + ", runs " + CudaVersion(runtime) + "\n";
  out += "  cuDNN " + Cudnn() + "\n";
  out += "  NCCL " + Nccl() + "\n";
  out += "  MPI: built with Open MPI " TG_TEXT(OMPI_MAJOR_VERSION) "." TG_TEXT(OMPI_MINOR_VERSION) "." TG_TEXT(
             OMPI_RELEASE_VERSION) ", runs " +
         MpiLibrary() + "\n";
  out += "  prometheus-cpp " TRAINGUARD_PROMETHEUS_CPP_VERSION
         ", libjpeg-turbo " TG_TEXT(LIBJPEG_TURBO_VERSION) ", CLI11 " CLI11_VERSION "\n";
  return out;
}

std::string EnvironmentReport() {
  utsname system{};
  ::uname(&system);
  const HostMemory memory = ReadHostMemory();
  std::string out = VersionText();
  out += "host: " + HostName() + " (" + system.sysname + " " + system.release + " " + system.machine + ")\n";
  out += "CPUs: " + std::to_string(UsableCpus()) + " usable by this process (affinity set and cgroup quota), " +
         std::to_string(std::thread::hardware_concurrency()) + " on the host\n";
  out += "memory: this process " + Bytes(memory.resident_bytes) + " resident; limit " + Bytes(memory.limit_bytes) +
         " (" + memory.limit_source + ")\n";
  out += Gpus();
  out += RankLayout();
  out += Variables();
  return out;
}

}  // namespace trainguard
