// Label verdicts, merging and report text (see label_verdict.h).
#include "diagnostics/labels/label_verdict.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace trainguard {

using json = nlohmann::json;

namespace {

bool IsBad(LabelKind k) { return k != LabelKind::kValid && k != LabelKind::kIgnored; }

size_t Slot(LabelKind k) { return static_cast<size_t>(k); }

// Keeps the first `limit` offenders of each bad kind, ordered by dataset index.
std::vector<Offender> FirstOfEachKind(std::vector<Offender> all, size_t limit) {
  std::stable_sort(all.begin(), all.end(), [](const Offender& a, const Offender& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.index < b.index;
  });
  std::vector<Offender> kept;
  std::vector<size_t> per_kind(kLabelKinds, 0);
  for (auto& o : all) {
    if (per_kind[Slot(o.kind)]++ < limit) kept.push_back(std::move(o));
  }
  return kept;
}

std::string Hint(const LabelReport& r, const LabelPolicy& p) {
  std::string hint;
  auto add = [&](const std::string& s) { hint += (hint.empty() ? "" : "; ") + s; };
  const auto n = [&](LabelKind k) { return r.counts[Slot(k)]; };
  if (n(LabelKind::kNegative) > 0 && p.negative == LabelAction::kFail) {
    add("if a negative label marks unlabelled images, pass --ignore-index with that value (e.g. "
        "--ignore-index=-1), or --negative-labels=ignore|drop");
  }
  if (n(LabelKind::kTooLarge) > 0 && p.too_large == LabelAction::kFail) {
    add("labels must lie in [0, " + std::to_string(r.num_classes) + "): fix the files listed, pass --num-classes " +
        "if the model needs more outputs, or --too-large-labels=ignore|drop");
  }
  if (n(LabelKind::kUnparsable) > 0 && p.unparsable == LabelAction::kFail) {
    add("fix the unparsable labels listed, or pass --unparsable-labels=ignore|drop");
  }
  return hint;
}

void AddWarnings(LabelReport& r) {
  int64_t largest = 0, smallest = INT64_MAX;
  std::vector<std::string> empty;
  for (size_t c = 0; c < r.histogram.size(); ++c) {
    const int64_t v = r.histogram[c];
    if (v == 0) empty.push_back(std::to_string(c));
    largest = std::max(largest, v);
    if (v > 0) smallest = std::min(smallest, v);
  }
  if (!empty.empty() && r.counts[Slot(LabelKind::kValid)] > 0) {
    std::string list;
    for (const auto& e : empty) list += (list.empty() ? "" : ", ") + e;
    std::string w = "classes without samples: " + list;
    if (empty.front() == "0" && empty.size() == 1 && r.classes_inferred) {
      w += " (labels may be 1-based: classes then run 1.." + std::to_string(r.num_classes - 1) + ")";
    }
    r.warnings.push_back(w);
  }
  if (smallest != INT64_MAX && largest >= 10 * smallest) {
    r.warnings.push_back("strong class imbalance: the largest class has " + std::to_string(largest) +
                         " samples, the smallest " + std::to_string(smallest));
  }
  if (r.counts[Slot(LabelKind::kValid)] == 0) r.warnings.push_back("no sample has a valid label");
}

}  // namespace

const char* LabelKindName(LabelKind kind) {
  switch (kind) {
    case LabelKind::kValid:
      return "valid";
    case LabelKind::kIgnored:
      return "ignored";
    case LabelKind::kNegative:
      return "negative";
    case LabelKind::kTooLarge:
      return "too_large";
    case LabelKind::kUnparsable:
      return "unparsable";
  }
  return "?";
}

bool ParseLabelAction(const std::string& text, LabelAction* action) {
  if (text == "fail")
    *action = LabelAction::kFail;
  else if (text == "ignore")
    *action = LabelAction::kIgnore;
  else if (text == "drop")
    *action = LabelAction::kDrop;
  else
    return false;
  return true;
}

const char* LabelActionName(LabelAction action) {
  switch (action) {
    case LabelAction::kFail:
      return "fail";
    case LabelAction::kIgnore:
      return "ignore";
    case LabelAction::kDrop:
      return "drop";
  }
  return "?";
}

LabelAction LabelPolicy::For(LabelKind kind) const {
  switch (kind) {
    case LabelKind::kNegative:
      return negative;
    case LabelKind::kTooLarge:
      return too_large;
    case LabelKind::kUnparsable:
      return unparsable;
    default:
      return LabelAction::kFail;  // not a bad kind: callers never ask
  }
}

LabelKind ClassifyLabel(const RawLabel& label, int64_t num_classes, int64_t ignore_index) {
  if (!label.value) return label.text.empty() ? LabelKind::kIgnored : LabelKind::kUnparsable;
  const int64_t v = *label.value;
  if (v == ignore_index) return LabelKind::kIgnored;
  if (v < 0) return LabelKind::kNegative;
  if (v >= num_classes) return LabelKind::kTooLarge;
  return LabelKind::kValid;
}

ShardScan ScanLabels(const SampleCatalog& catalog, const std::vector<int64_t>& samples, int rank, int64_t num_classes,
                     int64_t ignore_index, size_t max_offenders) {
  ShardScan scan;
  scan.histogram.assign(static_cast<size_t>(num_classes), 0);
  std::vector<std::vector<int64_t>> bad_by_kind(kLabelKinds);
  for (int64_t i : samples) {
    const RawLabel label = catalog.label(i);
    const LabelKind kind = ClassifyLabel(label, num_classes, ignore_index);
    ++scan.counts[Slot(kind)];
    if (kind == LabelKind::kValid) ++scan.histogram[static_cast<size_t>(*label.value)];
    if (IsBad(kind)) bad_by_kind[Slot(kind)].push_back(i);
  }
  // The shard is shuffled: the first offenders by index need every bad index of the kind.
  for (size_t k = 0; k < bad_by_kind.size(); ++k) {
    auto& list = bad_by_kind[k];
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    for (size_t n = 0; n < list.size() && n < max_offenders; ++n) {
      scan.offenders.push_back(
          {rank, list[n], catalog.source(list[n]), catalog.label(list[n]).text, static_cast<LabelKind>(k)});
    }
  }
  return scan;
}

LabelReport MergeScans(const std::vector<ShardScan>& scans, const LabelPolicy& policy, int64_t num_classes,
                       bool classes_inferred, int64_t ignore_index, size_t max_offenders) {
  LabelReport r;
  r.num_classes = num_classes;
  r.classes_inferred = classes_inferred;
  r.ignore_index = ignore_index;
  r.histogram.assign(static_cast<size_t>(num_classes), 0);
  std::vector<Offender> all;
  for (const ShardScan& s : scans) {
    for (size_t k = 0; k < r.counts.size(); ++k) r.counts[k] += s.counts[k];
    for (size_t c = 0; c < r.histogram.size() && c < s.histogram.size(); ++c) r.histogram[c] += s.histogram[c];
    all.insert(all.end(), s.offenders.begin(), s.offenders.end());
  }
  r.offenders = FirstOfEachKind(std::move(all), max_offenders);
  for (LabelKind k : {LabelKind::kNegative, LabelKind::kTooLarge, LabelKind::kUnparsable}) {
    if (r.counts[Slot(k)] > 0 && policy.For(k) == LabelAction::kFail) r.failed = true;
  }
  AddWarnings(r);
  if (r.failed) r.hint = Hint(r, policy);
  return r;
}

std::string FormatReport(const LabelReport& r) {
  const auto n = [&](LabelKind k) { return r.counts[Slot(k)]; };
  char line[512];
  std::snprintf(line, sizeof line,
                "labels: %lld valid, %lld ignored (unlabelled or %lld), %lld negative, %lld >= %lld classes, "
                "%lld unparsable%s\n",
                static_cast<long long>(n(LabelKind::kValid)), static_cast<long long>(n(LabelKind::kIgnored)),
                static_cast<long long>(r.ignore_index), static_cast<long long>(n(LabelKind::kNegative)),
                static_cast<long long>(n(LabelKind::kTooLarge)), static_cast<long long>(r.num_classes),
                static_cast<long long>(n(LabelKind::kUnparsable)),
                r.classes_inferred ? " (class count inferred from the labels)" : "");
  std::string out = line;
  out += "per class:";
  for (size_t c = 0; c < r.histogram.size(); ++c) out += " " + std::to_string(c) + ":" + std::to_string(r.histogram[c]);
  out += "\n";
  for (const Offender& o : r.offenders) {
    out += "  " + std::string(LabelKindName(o.kind)) + " label '" + o.raw + "' at sample " + std::to_string(o.index) +
           " (rank " + std::to_string(o.rank) + "): " + o.source + "\n";
  }
  for (const auto& w : r.warnings) out += "warning: " + w + "\n";
  if (r.failed) out += "label validation FAILED: " + r.hint + "\n";
  return out;
}

std::string ReportJson(const LabelReport& r, const LabelPolicy& p) {
  json j;
  j["num_classes"] = r.num_classes;
  j["classes_inferred"] = r.classes_inferred;
  j["ignore_index"] = r.ignore_index;
  for (int k = 0; k < kLabelKinds; ++k)
    j["counts"][LabelKindName(static_cast<LabelKind>(k))] = r.counts[static_cast<size_t>(k)];
  j["histogram"] = r.histogram;
  j["policy"] = {{"negative", LabelActionName(p.negative)},
                 {"too_large", LabelActionName(p.too_large)},
                 {"unparsable", LabelActionName(p.unparsable)}};
  j["offenders"] = json::array();
  for (const Offender& o : r.offenders) {
    j["offenders"].push_back({{"kind", LabelKindName(o.kind)},
                              {"rank", o.rank},
                              {"index", o.index},
                              {"source", o.source},
                              {"raw_label", o.raw}});
  }
  j["warnings"] = r.warnings;
  j["verdict"] = r.failed ? "fail" : "pass";
  if (r.failed) j["hint"] = r.hint;
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string EncodeScan(const ShardScan& s) {
  json j;
  j["counts"] = s.counts;
  j["histogram"] = s.histogram;
  j["offenders"] = json::array();
  for (const Offender& o : s.offenders) {
    j["offenders"].push_back({o.rank, o.index, o.source, o.raw, static_cast<int>(o.kind)});
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);  // labels may not be UTF-8
}

ShardScan DecodeScan(const std::string& bytes) {
  const json j = json::parse(bytes);
  ShardScan s;
  s.counts = j.at("counts").get<std::vector<int64_t>>();
  s.histogram = j.at("histogram").get<std::vector<int64_t>>();
  for (const auto& o : j.at("offenders")) {
    s.offenders.push_back({o[0].get<int>(), o[1].get<int64_t>(), o[2].get<std::string>(), o[3].get<std::string>(),
                           static_cast<LabelKind>(o[4].get<int>())});
  }
  return s;
}

}  // namespace trainguard
