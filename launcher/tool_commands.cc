// The subcommands that run without MPI: `trainguard diagnose`, `make-folder` and `shrink-folder`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "diagnostics/faults/bundle.h"
#include "diagnostics/faults/diagnose.h"
#include "diagnostics/faults/fault_injection.h"
#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/stop.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/log.h"
#include "trainer/data/fashion_mnist.h"
#include "trainer/data/image_folder.h"
#include "trainer/data/shrink_folder.h"

namespace trainguard {

// Kept back from --time-budget for printing and writing the report.
constexpr double kReportSeconds = 1;

// `trainguard diagnose BUNDLE`: no MPI; prints the summary, writes BUNDLE/diagnosis.json.
int RunDiagnose(const Command& command) {
  const auto start = std::chrono::steady_clock::now();
  setenv("CUDA_LAUNCH_BLOCKING", "1", 1);  // before anything touches CUDA
  try {
    const double budget = command.diagnosis_budget;
    const Bundle bundle = ReadBundle(command.bundle);
    std::vector<FaultSpec> injected;
    for (const auto& spec : command.train.inject_faults) injected.push_back(ParseFaultSpec(spec));
    DelayDiagnosis(injected, bundle.meta.rank, bundle.meta.global_step);
    const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Diagnosis d = Diagnose(bundle, budget > 0 ? std::max(0.1, budget - spent - kReportSeconds) : 0);
    std::printf("%s", FormatDiagnosis(d).c_str());
    WriteFileAtomically(command.bundle + "/diagnosis.json", DiagnosisJson(d));
    std::printf("  report: %s/diagnosis.json\n", command.bundle.c_str());
    std::fflush(stdout);
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
}

// `trainguard make-folder OUT`: no MPI; a food-11-style JPEG folder from Fashion-MNIST.
int RunMakeFolder(const Command& command) {
  const TrainConfig& c = command.train;
  try {
    const int64_t files = WriteFood11Folder(ReadFashionMnist(c.data_dir, Split::kTrain, c.train_samples),
                                            ReadFashionMnist(c.data_dir, Split::kTest, c.test_samples), command.bundle);
    std::printf("wrote %lld JPEG files under %s (training/, validation/, test/)\n", static_cast<long long>(files),
                command.bundle.c_str());
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
}

// `trainguard shrink-folder SOURCE OUT`: no MPI; every core shrinks files.
int RunShrinkFolder(const Command& command) {
  ShrinkOptions o = command.shrink;
  if (o.short_side == 0) o.short_side = static_cast<int>(command.train.image_size * 5 / 4);  // 160 for 128
  o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    const ShrinkReport r = ShrinkFolder(command.source, command.bundle, o);
    for (const auto& line : r.unreadable) std::printf("unreadable, copied unchanged: %s\n", line.c_str());
    std::printf(
        "%s -> %s (shorter side %d): %lld shrunk, %lld copied unchanged (%zu of them unreadable), %lld already "
        "there; %.1f MB read, %.1f MB written\n",
        command.source.c_str(), command.bundle.c_str(), o.short_side, static_cast<long long>(r.shrunk),
        static_cast<long long>(r.copied), r.unreadable.size(), static_cast<long long>(r.kept), r.bytes_in / 1e6,
        r.bytes_out / 1e6);
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
}

}  // namespace trainguard
