// Per-epoch label validation (see label_guard.h).
#include "diagnostics/labels/label_guard.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <nlohmann/json.hpp>

#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/core/log.h"

namespace trainguard {

LabelGuard::LabelGuard(ControlPlane& control, const SampleCatalog& catalog, LabelCheckOptions options,
                       std::string report_path)
    : control_(control), catalog_(catalog), options_(std::move(options)), report_path_(std::move(report_path)) {}

void LabelGuard::OnEpochBegin(int64_t epoch, EpochPlan& plan) {
  ValidatedShard checked = ValidateLabels(control_, catalog_, plan.shard, plan.unique_entries, options_);
  report_ = checked.report;
  if (on_report_) on_report_(report_);
  if (control_.rank() == 0) {
    std::printf("# label check before epoch %lld\n%s", static_cast<long long>(epoch + 1),
                FormatReport(report_).c_str());
    std::fflush(stdout);
    if (!report_path_.empty()) {
      try {
        std::string text = ReportJson(report_, options_.policy);
        if (!sections_.empty()) {
          auto document = nlohmann::json::parse(text);
          for (const auto& [key, json] : sections_) document[key] = nlohmann::json::parse(json());
          text = document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        }
        WriteFileAtomically(report_path_, text);
      } catch (const IoError& e) {
        LogLine(std::string("warning: label report not written: ") + e.what());  // the verdict stands
      }
    }
  }
  if (report_.failed) {
    std::string where = report_.offenders.empty()
                            ? ""
                            : " First: sample " + std::to_string(report_.offenders[0].index) + " (" +
                                  report_.offenders[0].source + ") has label '" + report_.offenders[0].raw + "'.";
    throw LabelError("label validation failed before epoch " + std::to_string(epoch + 1) + "." + where +
                     " To fix: " + report_.hint + (report_path_.empty() ? "" : " (report: " + report_path_ + ")"));
  }
  plan.shard = std::move(checked.shard);
  std::vector<int64_t> ignored;
  std::set_union(plan.ignored.begin(), plan.ignored.end(), checked.ignored.begin(), checked.ignored.end(),
                 std::back_inserter(ignored));
  plan.ignored = std::move(ignored);
}

}  // namespace trainguard
