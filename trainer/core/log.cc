// Implementation of the rank-prefixed log lines.
#include "trainer/core/log.h"

#include <cstdio>
#include <ctime>
#include <mutex>

namespace trainguard {
namespace {
int g_rank = -1;
std::mutex g_mutex;
}  // namespace

void SetLogRank(int rank) { g_rank = rank; }

void LogLine(const std::string& message) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_rank >= 0) {
    std::fprintf(stderr, "[%s rank %d] %s\n", stamp, g_rank, message.c_str());
  } else {
    std::fprintf(stderr, "[%s] %s\n", stamp, message.c_str());
  }
  std::fflush(stderr);
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace trainguard
