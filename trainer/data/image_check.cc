// The dataset doctor's image checks (see image_check.h).
#include "trainer/data/image_check.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>

#include "trainer/core/errors.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

// One rank's findings, as exchanged between ranks.
struct RankFindings {
  int64_t checked = 0, unreadable = 0, suspicious = 0;
  double seconds = 0;
  std::vector<ImageProblem> problems;  // sorted by index, at most max_listed
};

// The outcome of one file; `problem` is false for a good image.
struct Outcome {
  bool problem = false;
  bool unreadable = false;
  std::string reason;
};

Outcome CheckOne(const std::string& path, const ImageCheckOptions& options) {
  Outcome out;
  try {
    // Decoded at training's scale; a side below min_image_side is then the true size, since
    // DecodeJpeg only scales down while both sides stay >= the side asked for.
    const RgbImage img = DecodeJpegFile(path, std::max(options.image_size, options.min_image_side));
    if (img.width < options.min_image_side || img.height < options.min_image_side) {
      out.problem = true;
      out.reason = std::to_string(img.width) + "x" + std::to_string(img.height) + ", smaller than " +
                   std::to_string(options.min_image_side) + " pixels on a side (a placeholder?)";
    }
  } catch (const JpegError& e) {
    out.problem = out.unreadable = true;
    out.reason = e.what();
  }
  return out;
}

// This rank's check: the unique indices of `shard`, decoded on options.threads threads. Each
// file's outcome lands in its own slot, so the result does not depend on the thread count.
RankFindings CheckShard(const std::vector<ImageEntry>& entries, std::vector<int64_t> shard,
                        const ImageCheckOptions& options) {
  if (options.threads < 1) {
    throw ConfigError("image check: threads must be >= 1, not " + std::to_string(options.threads));
  }
  const auto start = std::chrono::steady_clock::now();
  std::sort(shard.begin(), shard.end());
  shard.erase(std::unique(shard.begin(), shard.end()), shard.end());
  for (const int64_t i : shard) {
    if (i < 0 || i >= static_cast<int64_t>(entries.size())) {
      throw DataError("image check: shard index " + std::to_string(i) + " is outside the " +
                      std::to_string(entries.size()) + " entries");
    }
  }
  std::vector<Outcome> outcomes(shard.size());
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> failures(static_cast<size_t>(options.threads));
  auto work = [&](size_t worker) {
    try {
      for (size_t k = next++; k < shard.size(); k = next++) {
        outcomes[k] = CheckOne(entries[static_cast<size_t>(shard[k])].path, options);
      }
    } catch (...) {
      failures[worker] = std::current_exception();
      next = shard.size();  // the others stop early
    }
  };
  std::vector<std::thread> pool;
  const size_t helpers = std::min(static_cast<size_t>(options.threads), std::max<size_t>(shard.size(), 1)) - 1;
  for (size_t t = 1; t <= helpers; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& t : pool) t.join();
  for (const auto& f : failures) {
    if (f) std::rethrow_exception(f);
  }

  RankFindings mine;
  mine.checked = static_cast<int64_t>(shard.size());
  for (size_t k = 0; k < shard.size(); ++k) {
    Outcome& o = outcomes[k];
    if (!o.problem) continue;
    ++(o.unreadable ? mine.unreadable : mine.suspicious);
    if (mine.problems.size() < options.max_listed) {
      const auto index = shard[k];
      mine.problems.push_back({index, entries[static_cast<size_t>(index)].path, std::move(o.reason), o.unreadable});
    }
  }
  mine.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return mine;
}

// Wire format: fields as "<decimal length>:<bytes>", so any byte may appear in a path.
void Put(std::string& out, const std::string& field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

std::string Serialise(const RankFindings& f) {
  std::string out;
  Put(out, std::to_string(f.checked));
  Put(out, std::to_string(f.unreadable));
  Put(out, std::to_string(f.suspicious));
  Put(out, std::to_string(f.seconds));
  Put(out, std::to_string(f.problems.size()));
  for (const auto& p : f.problems) {
    Put(out, std::to_string(p.index));
    Put(out, p.path);
    Put(out, p.reason);
    Put(out, p.unreadable ? "1" : "0");
  }
  return out;
}

// Reads the fields Serialise wrote; throws CommError on malformed bytes.
class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  std::string Next() {
    const size_t colon = bytes_.find(':', pos_);
    if (colon == std::string::npos) throw CommError("image check: malformed findings from a peer");
    const size_t size = std::stoul(bytes_.substr(pos_, colon - pos_));
    if (size > bytes_.size() - colon - 1) throw CommError("image check: truncated findings from a peer");
    std::string field = bytes_.substr(colon + 1, size);
    pos_ = colon + 1 + size;
    return field;
  }
  int64_t NextInt() { return std::stoll(Next()); }

 private:
  const std::string& bytes_;
  size_t pos_ = 0;
};

RankFindings Deserialise(const std::string& bytes) {
  Reader r(bytes);
  RankFindings f;
  f.checked = r.NextInt();
  f.unreadable = r.NextInt();
  f.suspicious = r.NextInt();
  f.seconds = std::stod(r.Next());
  const int64_t n = r.NextInt();
  for (int64_t i = 0; i < n; ++i) {
    ImageProblem p;
    p.index = r.NextInt();
    p.path = r.Next();
    p.reason = r.Next();
    p.unreadable = r.Next() == "1";
    f.problems.push_back(std::move(p));
  }
  return f;
}

}  // namespace

ImageCheckReport CheckImages(ControlPlane& control, const std::vector<ImageEntry>& entries,
                             const std::vector<int64_t>& shard, const ImageCheckOptions& options) {
  RankFindings mine;
  RunAgreed(control, [&] { mine = CheckShard(entries, shard, options); });
  ImageCheckReport report;
  for (const std::string& bytes : control.AllGather(Serialise(mine))) {
    RankFindings f = Deserialise(bytes);
    report.checked += f.checked;
    report.unreadable += f.unreadable;
    report.suspicious += f.suspicious;
    report.seconds = std::max(report.seconds, f.seconds);
    for (auto& p : f.problems) report.problems.push_back(std::move(p));
  }
  // Each rank sent its lowest max_listed indices, so the merged lowest max_listed are among them.
  std::stable_sort(report.problems.begin(), report.problems.end(),
                   [](const ImageProblem& a, const ImageProblem& b) { return a.index < b.index; });
  if (report.problems.size() > options.max_listed) report.problems.resize(options.max_listed);
  return report;
}

std::string FormatImageReport(const ImageCheckReport& report) {
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%.1f", report.seconds);
  std::string out = "image check: " + std::to_string(report.checked) + " images checked in " + seconds +
                    " s (slowest rank): " + std::to_string(report.unreadable) + " unreadable, " +
                    std::to_string(report.suspicious) + " suspicious\n";
  for (const auto& p : report.problems) {
    out += (p.unreadable ? "unreadable image " : "suspicious image ") + p.path + ": " + p.reason + "\n";
  }
  const int64_t total = report.unreadable + report.suspicious;
  if (total > static_cast<int64_t>(report.problems.size())) {
    out += "... and " + std::to_string(total - static_cast<int64_t>(report.problems.size())) +
           " more not listed (the first " + std::to_string(report.problems.size()) + " by index are)\n";
  }
  if (total == 0) {
    out += "every image decodes; nothing to do\n";
    return out;
  }
  if (report.unreadable > 0) {
    out += "fix or remove the unreadable files, or train with --unreadable skip to feed them as ignored samples\n";
  }
  if (report.suspicious > 0) {
    out += "look at the suspicious images: they train as resized-up blurs; remove them if they are placeholders\n";
  }
  return out;
}

nlohmann::json ImageReportJson(const ImageCheckReport& report) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : report.problems) {
    problems.push_back({{"index", p.index},
                        {"path", p.path},
                        {"kind", p.unreadable ? "unreadable" : "suspicious"},
                        {"reason", p.reason}});
  }
  return {{"checked", report.checked}, {"unreadable", report.unreadable},  {"suspicious", report.suspicious},
          {"seconds", report.seconds}, {"listed", report.problems.size()}, {"problems", std::move(problems)}};
}

}  // namespace trainguard
