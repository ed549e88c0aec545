// FileSdJson and its atomic write (see file_sd.h).
#include "diagnostics/metrics/file_sd.h"

#include <exception>
#include <nlohmann/json.hpp>

#include "trainer/core/atomic_file.h"

namespace trainguard {

std::string FileSdJson(const std::string& job, const std::vector<Target>& targets) {
  nlohmann::json entries = nlohmann::json::array();
  for (const Target& target : targets) {
    const bool ipv6 = target.host.find(':') != std::string::npos;
    const std::string address = (ipv6 ? "[" + target.host + "]" : target.host) + ":" + std::to_string(target.port);
    entries.push_back({{"targets", nlohmann::json::array({address})},
                       {"labels", {{"job", job}, {"rank", std::to_string(target.rank)}, {"host", target.host}}}});
  }
  return entries.dump(2) + "\n";
}

std::string WriteFileSd(const std::string& path, const std::string& job, const std::vector<Target>& targets) {
  try {
    WriteFileAtomically(path, FileSdJson(job, targets));
  } catch (const std::exception& e) {
    return std::string("metrics targets file not written: ") + e.what();
  }
  return "";
}

}  // namespace trainguard
