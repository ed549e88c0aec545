// Implementation of the rank-prefixed log lines.
#include "trainer/core/log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace trainguard {
namespace {
int g_rank = -1;
std::mutex g_mutex;
std::FILE* g_file = nullptr;  // never closed: lines may come until the process ends
}  // namespace

void SetLogRank(int rank) { g_rank = rank; }

std::string SetLogFile(const std::string& path) {
  std::error_code error;
  const auto folder = std::filesystem::path(path).parent_path();
  if (!folder.empty()) std::filesystem::create_directories(folder, error);
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) return path + ": " + std::strerror(errno);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_file != nullptr) std::fclose(g_file);
  g_file = file;
  return "";
}

void LogLine(const std::string& message) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  char prefix[48];
  if (g_rank >= 0) {
    std::snprintf(prefix, sizeof prefix, "[%s rank %d]", stamp, g_rank);
  } else {
    std::snprintf(prefix, sizeof prefix, "[%s]", stamp);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  for (std::FILE* out : {stderr, g_file}) {
    if (out == nullptr) continue;
    std::fprintf(out, "%s %s\n", prefix, message.c_str());
    std::fflush(out);
  }
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace trainguard
