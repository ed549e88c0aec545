// The quarantine file (see quarantine.h).
#include "diagnostics/faults/quarantine.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "trainer/core/atomic_file.h"

namespace trainguard {
namespace {

QuarantinedSample FromJson(const nlohmann::json& j) {
  QuarantinedSample r;
  r.sample = j.at("sample").get<int64_t>();
  r.file = j.at("file").get<std::string>();
  r.label = j.at("label").get<std::string>();
  r.step = j.at("step").get<int64_t>();
  r.rank = j.at("rank").get<int>();
  r.error = j.at("error").get<std::string>();
  return r;
}

nlohmann::json ToJson(const QuarantinedSample& r) {
  return {{"sample", r.sample}, {"file", r.file}, {"label", r.label},
          {"step", r.step},     {"rank", r.rank}, {"error", r.error}};
}

std::string ToLine(const QuarantinedSample& r) {
  return ToJson(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// An exclusive flock on PATH.lock for the scope: ranks of one job (on one host, or on a shared
// file system that honours flock) append one at a time.
class FileLock {
 public:
  explicit FileLock(const std::string& path)
      : fd_(::open((path + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw QuarantineError(ErrnoMessage("cannot lock the quarantine file " + path, errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const int err = errno;
        ::close(fd_);
        throw QuarantineError(ErrnoMessage("cannot lock the quarantine file " + path, err));
      }
    }
  }
  ~FileLock() { ::close(fd_); }  // closing releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::vector<QuarantinedSample> ReadQuarantine(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return {};
  std::string text;
  try {
    text = ReadWholeFile(path);
  } catch (const IoError& e) {
    throw QuarantineError(std::string("the quarantine file cannot be read: ") + e.what());
  }
  std::vector<QuarantinedSample> records;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.empty()) continue;
    try {
      records.push_back(FromJson(nlohmann::json::parse(line)));
    } catch (const nlohmann::json::exception& e) {
      throw QuarantineError("the quarantine file " + path + " has a bad record on line " + std::to_string(number) +
                            " (" + e.what() + "): fix or delete that line (each line is one set-aside sample)");
    }
  }
  return records;
}

QuarantineAppend AppendQuarantine(const std::string& path, const std::vector<QuarantinedSample>& add, int64_t limit) {
  FileLock lock(path);
  QuarantineAppend out{ReadQuarantine(path), false};
  std::vector<QuarantinedSample> records = out.records;
  std::set<int64_t> held;
  for (const auto& r : records) held.insert(r.sample);
  for (const auto& r : add) {
    if (held.insert(r.sample).second) records.push_back(r);
  }
  if (records.size() == out.records.size()) return out;
  if (static_cast<int64_t>(held.size()) > limit) {
    out.over_budget = true;
    return out;
  }
  std::string text;
  for (const auto& r : records) text += ToLine(r);
  try {
    WriteFileAtomically(path, text);
  } catch (const IoError& e) {
    throw QuarantineError(std::string("the quarantine file cannot be written: ") + e.what());
  }
  out.records = std::move(records);
  return out;
}

std::vector<int64_t> QuarantinedIndices(const std::vector<QuarantinedSample>& records) {
  std::vector<int64_t> indices;
  for (const auto& r : records) indices.push_back(r.sample);
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  return indices;
}

int64_t QuarantineBudget(const std::string& text, int64_t dataset_size) {
  const auto bad = [&] {
    return ConfigError("--max-quarantined: '" + text +
                       "' is neither a count (e.g. 10) nor a percentage of the training set (e.g. 0.1%)");
  };
  if (text.empty()) throw bad();
  size_t used = 0;
  try {
    if (text.back() == '%') {
      const double percent = std::stod(text.substr(0, text.size() - 1), &used);
      if (used != text.size() - 1 || !(percent >= 0) || percent > 100) throw bad();
      const auto share = static_cast<int64_t>(std::floor(percent / 100 * static_cast<double>(dataset_size)));
      return std::max<int64_t>(share, percent > 0 ? 1 : 0);
    }
    const long long count = std::stoll(text, &used);
    if (used != text.size() || count < 0) throw bad();
    return count;
  } catch (const std::logic_error&) {  // stod / stoll: not a number, out of range
    throw bad();
  }
}

std::string QuarantineJsonArray(const std::vector<QuarantinedSample>& records) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& r : records) array.push_back(ToJson(r));
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FormatQuarantine(const std::vector<QuarantinedSample>& records) {
  std::string out;
  for (const auto& r : records) {
    out += "sample " + std::to_string(r.sample) + " (" + r.file + ", label '" + r.label + "') at step " +
           std::to_string(r.step) + " on rank " + std::to_string(r.rank) + "\n";
  }
  return out;
}

}  // namespace trainguard
