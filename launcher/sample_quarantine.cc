// --bad-samples quarantine, the launcher's side (see sample_quarantine.h).
#include "launcher/sample_quarantine.h"

#include <nlohmann/json.hpp>

#include "trainer/core/atomic_file.h"
#include "trainer/core/log.h"

namespace trainguard {

SampleQuarantine::SampleQuarantine(const TrainConfig& config, int64_t dataset_size, const FaultGuard& guard, int rank,
                                   Metrics* metrics)
    : file_(FileOf(config)),
      budget_text_(config.max_quarantined),
      budget_(QuarantineBudget(config.max_quarantined, dataset_size)),
      guard_(guard),
      rank_(rank),
      metrics_(metrics),
      at_start_(ReadQuarantine(file_)) {
  if (rank_ != 0) return;
  if (metrics_ != nullptr) metrics_->AddQuarantinedSamples(static_cast<int64_t>(at_start_.size()));
  if (!at_start_.empty()) {
    LogLine(std::to_string(at_start_.size()) + " sample(s) of " + file_ + " are set aside: not trained on");
  }
}

std::string SampleQuarantine::FileOf(const TrainConfig& config) {
  return config.quarantine.empty() ? config.checkpoint + ".quarantine" : config.quarantine;
}

std::vector<int64_t> SampleQuarantine::SetAside() const { return QuarantinedIndices(at_start_); }

std::vector<QuarantinedSample> SampleQuarantine::Named(const StepFailure& failure, std::string* why) const {
  if (guard_.bundle().empty()) {
    *why = "no repro bundle was written, so no diagnosis ran (see the log above)";
    return {};
  }
  const std::string report = guard_.bundle() + "/diagnosis.json";
  nlohmann::json d;
  try {
    d = nlohmann::json::parse(ReadWholeFile(report));
  } catch (const std::exception& e) {
    *why = "the diagnosis left no readable report " + report + " (" + FirstLine(e.what()) + ")";
    return {};
  }
  std::vector<QuarantinedSample> named;
  for (const auto& s : d.value("samples", nlohmann::json::array())) {
    named.push_back({s.value("index", int64_t{-1}), s.value("source", std::string()),
                     s.value("raw_label", std::string()), failure.where.global_step, rank_, FirstLine(failure.what)});
  }
  if (named.empty()) *why = "the diagnosis named no sample (fault: " + d.value("fault", std::string("?")) + ")";
  return named;
}

QuarantineVerdict SampleQuarantine::Quarantine(const StepFailure& failure) {
  QuarantineVerdict verdict;
  const std::vector<QuarantinedSample> named = Named(failure, &verdict.refusal);
  if (named.empty()) {
    LogLine("error: the samples of step " + std::to_string(failure.where.global_step) +
            " cannot be set aside: " + verdict.refusal);
    return verdict;
  }
  try {
    const QuarantineAppend added = AppendQuarantine(file_, named, budget_);
    if (added.over_budget) {
      verdict.refusal = "setting aside " + std::to_string(named.size()) +
                        " more sample(s) would pass --max-quarantined " + budget_text_ + " (" +
                        std::to_string(budget_) + " samples); a dataset this bad needs fixing";
      LogLine("error: " + verdict.refusal + ". Set aside before:\n" + FormatQuarantine(added.records) + "Named now:\n" +
              FormatQuarantine(named));
      return verdict;
    }
  } catch (const QuarantineError& e) {
    verdict.refusal = e.what();
    LogLine(std::string("error: ") + e.what());
    return verdict;
  }
  for (const auto& r : named) verdict.samples.push_back(r.sample);
  LogLine("set aside in " + file_ + ":\n" + FormatQuarantine(named));
  return verdict;
}

void SampleQuarantine::OnSetAside(const std::vector<int64_t>& samples, int64_t failed_step, int64_t resumed_step) {
  if (rank_ != 0) return;
  if (metrics_ != nullptr) metrics_->AddQuarantinedSamples(static_cast<int64_t>(samples.size()));
  LogLine(std::to_string(samples.size()) + " sample(s) set aside after step " + std::to_string(failed_step) +
          " failed; going on from the checkpoint of step " + std::to_string(resumed_step) + " without them: " +
          std::to_string(failed_step - 1 - resumed_step) + " step(s) done since that checkpoint are trained again");
}

std::string SampleQuarantine::Json() const { return QuarantineJsonArray(ReadQuarantine(file_)); }

std::string SampleQuarantine::Summary() const {
  const std::vector<QuarantinedSample> records = ReadQuarantine(file_);
  if (records.empty()) return "";
  return std::to_string(records.size()) + " sample(s) set aside in " + file_ + " (--bad-samples quarantine):\n" +
         FormatQuarantine(records);
}

}  // namespace trainguard
