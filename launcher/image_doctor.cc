// The dataset doctor in the subcommands (see image_doctor.h).
#include "launcher/image_doctor.h"

#include <algorithm>
#include <cstdio>

#include "trainer/core/errors.h"
#include "trainer/core/sharding.h"
#include "trainer/data/image_check.h"
#include "trainer/data/image_folder.h"

namespace trainguard {

void CheckImagesFirst(const TrainConfig& config, Job& job, LabelGuard& labels) {
  const auto* folder = dynamic_cast<const ImageFolderDataset*>(job.train.get());
  if (!config.check_images || folder == nullptr) return;
  job.watch->SetPhase("the image check");
  ImageCheckOptions o;
  o.threads = static_cast<int>(std::max<int64_t>(1, config.loader_threads));
  o.min_image_side = static_cast<int>(config.min_image_side);
  o.image_size = static_cast<int>(config.image_size);
  // Every sample once: the evaluation shards are disjoint (training shards repeat a few).
  const auto shard = EvalShard(folder->size(), job.control.rank(), job.control.world());
  const ImageCheckReport report = CheckImages(job.control, folder->entries(), shard, o);
  labels.add_section("images", [json = ImageReportJson(report).dump(
                                    -1, ' ', false, nlohmann::json::error_handler_t::replace)] { return json; });
  if (job.control.rank() == 0) {
    std::printf("# image check (%.1f s, %d thread(s) per rank)\n%s", report.seconds, o.threads,
                FormatImageReport(report).c_str());
    std::fflush(stdout);
  }
  if (report.unreadable > 0 && config.unreadable == "fail") {
    // The report is the same on every rank: so is this verdict.
    throw DataError(std::to_string(report.unreadable) + " of " + std::to_string(report.checked) +
                    " images are unreadable (listed above by rank 0" +
                    (config.label_report.empty() ? "" : ", and in " + config.label_report) +
                    "); fix or remove them, or pass --unreadable skip to train without them");
  }
}

}  // namespace trainguard
