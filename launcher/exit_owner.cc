// The one owner of a rank's exit (see exit_owner.h).
#include "launcher/exit_owner.h"

#include <unistd.h>

#include <atomic>

#include "trainer/core/log.h"

namespace trainguard {
namespace {

std::atomic<int> g_code{-1};

}  // namespace

bool ClaimExit(int code) {
  int none = -1;
  return g_code.compare_exchange_strong(none, code);
}

int ClaimedExitCode() { return g_code.load(); }

void StandAside(const std::string& why) {
  LogLine(why + ": this rank is already ending with code " + std::to_string(ClaimedExitCode()) + ", which stands");
  for (;;) ::pause();
}

}  // namespace trainguard
