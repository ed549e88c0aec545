// The one owner of a rank's exit (see exit_owner.h).
#include "trainer/core/exit_owner.h"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "trainer/core/log.h"

namespace trainguard {
namespace {

std::mutex g_mutex;  // guards g_owner, g_code
std::optional<std::thread::id> g_owner;
int g_code = -1;
std::atomic<bool> g_hurried{false};

}  // namespace

bool ClaimExit(int code) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_owner && *g_owner != std::this_thread::get_id()) return false;
  g_owner = std::this_thread::get_id();
  if (code >= 0) g_code = code;
  return true;
}

void StandAside(const std::string& why) {
  int code = -1;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    code = g_code;
  }
  LogLine(why + ": this rank is already " +
          (code >= 0 ? "ending with code " + std::to_string(code) + ", which stands"
                     : "stopping on a failure, whose exit code stands"));
  for (;;) ::pause();
}

void HurryTheStop() { g_hurried = true; }

bool StopHurried() { return g_hurried.load(); }

}  // namespace trainguard
