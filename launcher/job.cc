// Job setup shared by the subcommands (see job.h).
#include "launcher/job.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "trainer/comm/data_plane_factory.h"
#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"
#include "trainer/core/log.h"
#include "trainer/core/usable_cpus.h"
#include "trainer/data/fashion_mnist.h"
#include "trainer/data/image_folder.h"
#include "trainer/data/planted_labels.h"
#include "trainer/data/synthetic.h"

namespace trainguard {
namespace {

// A GPU newer or older than every architecture this Torch build has kernels for fails its first
// kernel with cudaErrorNoKernelImageForDevice; said at start, with the GPU's compute capability,
// rather than as a failed first step.
void RefuseGpuWithoutKernels(torch::Device device) {
  constexpr int32_t kCudaErrorNoKernelImageForDevice = 209;
  try {
    torch::ones({1}, device).add_(1).cpu();
  } catch (const c10::AcceleratorError& e) {
    if (e.get_error_code() != kCudaErrorNoKernelImageForDevice) throw;
    const auto* gpu = at::cuda::getDeviceProperties(device.index());
    throw ConfigError("this Torch build has no kernels for " + std::string(gpu->name) + " (" + device.str() + " on " +
                      HostName() + ", compute capability " + std::to_string(gpu->major) + "." +
                      std::to_string(gpu->minor) + "): install the torch wheel built for it, or use --device cpu");
  }
}

// This rank's device: the GPU of index local rank modulo the visible GPUs, made the current
// CUDA device of the process. Whether two ranks then share a GPU is checked across ranks
// (RefuseSharedGpus): ranks that each see a GPU of their own (Slurm's --gpus-per-task=1) all
// pick index 0, and that is fine.
torch::Device PickDevice(const TrainConfig& config, const MpiSession& mpi) {
  const bool have_cuda = torch::cuda::is_available();
  if (config.device == "cuda" && !have_cuda) {
    throw ConfigError("--device cuda: no CUDA device is visible to this process on " + HostName() +
                      "; use --device cpu");
  }
  if (config.device == "cpu" || !have_cuda) return torch::kCPU;
  const auto count = static_cast<int>(torch::cuda::device_count());
  const torch::Device device(torch::kCUDA, static_cast<c10::DeviceIndex>(mpi.local_rank() % count));
  c10::cuda::set_device(device.index());
  RefuseGpuWithoutKernels(device);
  return device;
}

// Every rank must train on the same kind of device, or the planes would not match: a rank
// without a GPU under --device auto would run MPI collectives while the others run NCCL.
void AgreeOnDeviceType(ControlPlane& control, torch::Device device) {
  std::vector<int64_t> kinds{device.is_cuda() ? 1 : 0, device.is_cuda() ? 0 : 1};
  control.AllReduceMax(kinds);
  if (kinds[0] == 1 && kinds[1] == 1) {
    throw ConfigError(
        "ranks disagree on the device: some see a GPU and would train on CUDA, others see none (this "
        "rank: " +
        device.str() + " on " + HostName() + "); give every rank a GPU, or pass --device cpu");
  }
}

// NCCL allows one rank per GPU: the ranks gather where their GPU is (host and PCI bus id) and
// all refuse, naming the ranks that share one, before NCCL would fail on "Duplicate GPU".
void RefuseSharedGpus(const TrainConfig& config, Job& job) {
  if (!job.device.is_cuda() || !UsesNccl(config, job.device)) return;
  char bus_id[32] = {0};
  if (cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, job.device.index()) != cudaSuccess) {
    std::snprintf(bus_id, sizeof bus_id, "cuda:%d", job.device.index());  // still unique per process view
  }
  const std::string error = SharedGpuError(job.control.AllGather(HostName() + " " + bus_id));
  if (!error.empty()) {
    throw ConfigError(error +
                      ", and NCCL allows one rank per GPU: start at most one rank per GPU of a node, or pass "
                      "--data-plane mpi to let ranks share a GPU");
  }
}

// --threads 0: the CPUs this process may use (its affinity set, its cgroup's quota) shared
// among the ranks of this node, not the host's CPU count: a pod with a CPU limit on a large host
// would otherwise run far more threads than it has CPUs.
void SetThreads(const TrainConfig& config, const MpiSession& mpi) {
  int64_t threads = config.threads;
  if (threads == 0) {
    const int cpus = UsableCpus();
    threads = std::max<int64_t>(1, cpus / mpi.local_world());
    if (mpi.rank() == 0) {
      LogLine("intra-op threads per rank: " + std::to_string(threads) + " (" + std::to_string(cpus) +
              " CPUs usable by this process, " + std::to_string(mpi.local_world()) +
              " rank(s) on this node; --threads sets it)");
    }
  }
  torch::set_num_threads(static_cast<int>(threads));
}

// "17=11" -> {17, RawLabel 11}; the index must name a sample of the training set.
std::map<int64_t, RawLabel> ParsePlantedLabels(const std::vector<std::string>& plants, int64_t size) {
  std::map<int64_t, RawLabel> planted;
  for (const auto& plant : plants) {
    const auto eq = plant.find('=');
    const RawLabel index = ParseLabelText(plant.substr(0, eq));
    if (!index.value || *index.value < 0 || *index.value >= size) {
      throw ConfigError("--plant-label " + plant + ": the index must be a training sample in [0, " +
                        std::to_string(size) + ")");
    }
    planted[*index.value] = ParseLabelText(plant.substr(eq + 1));
  }
  return planted;
}

// Largest non-negative label + 1 (every rank holds the whole list, so no reduction is needed).
// `source` (the folder or manifest) names where the labels came from in the error.
int64_t InferClassCount(const std::vector<ImageEntry>& entries, const std::string& source) {
  int64_t largest = -1;
  for (const auto& e : entries) {
    if (e.label.value && *e.label.value >= 0) largest = std::max(largest, *e.label.value);
  }
  if (largest < 0)
    throw DataError("no image in " + source + " has a usable label (unlabelled test images?); pass --num-classes");
  return largest + 1;
}

}  // namespace

void PrepareJob(const TrainConfig& c, Job& job) {
  RunAgreed(job.control, [&] {
    SetThreads(c, job.mpi);
    job.device = PickDevice(c, job.mpi);
    if (c.dataset == "synthetic") {
      SyntheticOptions o;
      o.samples = c.synthetic_samples;
      o.classes = c.synthetic_classes;
      o.seed = c.seed;
      job.train = MakeSyntheticDataset(o);
    } else if (c.dataset == "folder") {
      auto entries = c.manifest.empty() ? ScanImageFolder(c.data_dir) : ReadManifest(c.manifest);
      ImageFolderOptions o;
      o.image_size = c.image_size;
      o.num_classes =
          c.num_classes > 0 ? c.num_classes : InferClassCount(entries, c.manifest.empty() ? c.data_dir : c.manifest);
      if (c.num_classes == 0 && job.mpi.rank() == 0) {
        LogLine("class count inferred from the file names: " + std::to_string(o.num_classes) +
                " (--num-classes sets it)");
      }
      o.augment = c.augment;
      o.skip_unreadable = c.unreadable == "skip";
      o.seed = c.seed;
      job.train = std::make_unique<ImageFolderDataset>(std::move(entries), o);
      if (c.evaluate && !c.eval_dir.empty())
        job.test = std::make_unique<ImageFolderDataset>(ScanImageFolder(c.eval_dir), o);
    } else {
      job.train = LoadFashionMnist(c.data_dir, Split::kTrain, c.train_samples);
      if (c.evaluate) job.test = LoadFashionMnist(c.data_dir, Split::kTest, c.test_samples);
    }
    job.train = WithPlantedLabels(std::move(job.train), ParsePlantedLabels(c.plant_labels, job.train->size()));
  });
  AgreeOnDeviceType(job.control, job.device);
  RefuseSharedGpus(c, job);
}

std::string SharedGpuError(const std::vector<std::string>& placements) {
  std::map<std::string, std::vector<int>> ranks_of;  // "host bus-id" -> ranks
  for (size_t r = 0; r < placements.size(); ++r) ranks_of[placements[r]].push_back(static_cast<int>(r));
  std::string error;
  for (const auto& [place, ranks] : ranks_of) {
    if (ranks.size() < 2) continue;
    std::string names;
    for (int r : ranks) names += (names.empty() ? "" : ", ") + std::to_string(r);
    const auto space = place.find(' ');
    error += std::string(error.empty() ? "" : "; ") + "ranks " + names + " share the GPU " + place.substr(space + 1) +
             " on " + place.substr(0, space);
  }
  return error;
}

LabelCheckOptions LabelOptionsFor(const TrainConfig& c, const Dataset& dataset) {
  auto action = [&](const std::string& specific) {
    LabelAction a = LabelAction::kFail;
    ParseLabelAction(specific.empty() ? c.bad_labels : specific, &a);  // validated by ValidateTrainConfig
    return a;
  };
  LabelCheckOptions o;
  o.policy.negative = action(c.negative_labels);
  o.policy.too_large = action(c.too_large_labels);
  o.policy.unparsable = action(c.unparsable_labels);
  o.num_classes = c.num_classes > 0 ? c.num_classes : dataset.num_classes();
  o.ignore_index = c.ignore_index;
  o.max_offenders = static_cast<size_t>(c.max_offenders);
  return o;
}

}  // namespace trainguard
