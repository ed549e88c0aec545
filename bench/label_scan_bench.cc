// Label validation cost under mpirun: every rank validates its shard of N labels (default 10
// million; a few bad ones planted, policy "ignore" so the whole path runs). Rank 0 prints one
// line: ranks, labels, the slowest rank's scan time and scan rate (labels per second per rank),
// and the time of the collective part (gather of the scans + merge), and the whole validation.
//   mpirun -np R build/bench/label_scan_bench [N]
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "diagnostics/labels/label_validation.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/sharding.h"

namespace trainguard {
namespace {

// Labels held in memory as small integers, like a decoded label file.
class MemoryCatalog final : public SampleCatalog {
 public:
  explicit MemoryCatalog(int64_t n) : labels_(static_cast<size_t>(n)) {
    for (int64_t i = 0; i < n; ++i) labels_[static_cast<size_t>(i)] = static_cast<int16_t>(i % 11);
    for (int64_t i = 7; i < n; i += 1000003) labels_[static_cast<size_t>(i)] = 11;  // out of range
  }
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  RawLabel label(int64_t i) const override {
    const int16_t v = labels_[static_cast<size_t>(i)];
    return {v, std::to_string(v)};
  }
  std::string source(int64_t i) const override { return "labels.bin#" + std::to_string(i); }

 private:
  std::vector<int16_t> labels_;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The slowest rank's time, to microseconds.
double SlowestRank(ControlPlane& control, double seconds) {
  std::vector<int64_t> micros{static_cast<int64_t>(seconds * 1e6)};
  control.AllReduceMax(micros);
  return static_cast<double>(micros[0]) / 1e6;
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  using namespace trainguard;
  using Clock = std::chrono::steady_clock;
  MPI_Init(&argc, &argv);
  {
    MpiControlPlane control(MPI_COMM_WORLD);
    const int64_t n = argc > 1 ? std::stoll(argv[1]) : 10'000'000;
    const MemoryCatalog catalog(n);
    const auto shard = TrainShard({n, control.rank(), control.world(), 0, 0, true, {}});
    const int64_t unique = UniqueShardEntries(n, control.rank(), control.world());
    LabelCheckOptions options;
    options.policy = {LabelAction::kIgnore, LabelAction::kIgnore, LabelAction::kIgnore};
    options.num_classes = 11;

    const std::vector<int64_t> scanned(shard.begin(), shard.begin() + unique);
    auto t = Clock::now();
    const ShardScan scan = ScanLabels(catalog, scanned, control.rank(), 11, -1, 10);
    const double scan_s = SlowestRank(control, Seconds(t));

    t = Clock::now();
    std::vector<ShardScan> all;
    for (const auto& bytes : control.AllGather(EncodeScan(scan))) all.push_back(DecodeScan(bytes));
    const LabelReport report = MergeScans(all, options.policy, 11, false, -1, 10);
    const double reduce_s = SlowestRank(control, Seconds(t));

    t = Clock::now();
    const ValidatedShard whole = ValidateLabels(control, catalog, shard, unique, options);
    const double whole_s = SlowestRank(control, Seconds(t));

    if (control.rank() == 0) {
      std::printf(
          "ranks=%d labels=%lld bad=%lld scan_s=%.3f scan_labels_per_s_per_rank=%.3g reduce_ms=%.2f "
          "validate_s=%.3f\n",
          control.world(), static_cast<long long>(n),
          static_cast<long long>(report.counts[static_cast<size_t>(LabelKind::kTooLarge)]), scan_s,
          static_cast<double>(unique) / scan_s, reduce_s * 1e3, whole_s);
    }
    (void)whole;
  }
  MPI_Finalize();
  return 0;
}
