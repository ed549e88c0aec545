// Reading the training thread's call stack (see stack_dump.h).
#include "launcher/stack_dump.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

namespace trainguard {
namespace {

constexpr int kMaxFrames = 64;
void* g_frames[kMaxFrames];
std::atomic<int> g_count{-1};  // -1: not captured yet
pthread_t g_thread;
std::atomic<bool> g_remembered{false};

// Async-signal-safe once libgcc's unwinder is loaded (RememberTrainingThread loads it).
void Capture(int) { g_count.store(backtrace(g_frames, kMaxFrames)); }

// "trainguard::Trainer::Run() +0x1f in /path/libfoo.so" for one return address.
std::string Symbolize(void* address) {
  Dl_info info{};
  if (dladdr(address, &info) == 0) return "?";
  std::string name = "?";
  if (info.dli_sname != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    name = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
    std::free(demangled);
    char offset[32];
    std::snprintf(offset, sizeof offset, " +0x%lx",
                  static_cast<unsigned long>(static_cast<char*>(address) - static_cast<char*>(info.dli_saddr)));
    name += offset;
  }
  std::string object = info.dli_fname != nullptr ? info.dli_fname : "?";
  return name + " in " + object.substr(object.rfind('/') + 1);
}

}  // namespace

void RememberTrainingThread() {
  void* warm[1];
  backtrace(warm, 1);  // loads the unwinder now, outside any signal handler
  struct sigaction action {};
  action.sa_handler = Capture;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGURG, &action, nullptr);
  g_thread = pthread_self();
  g_remembered = true;
}

std::string TrainingThreadStack(double timeout_s) {
  if (!g_remembered) return "  (the training thread was not remembered)";
  g_count = -1;
  if (pthread_kill(g_thread, SIGURG) != 0) return "  (the training thread could not be signalled)";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (g_count.load() < 0) {
    if (std::chrono::steady_clock::now() > deadline) return "  (the training thread did not answer)";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::string text;
  // Frames 0-1 are the handler and the signal trampoline.
  for (int i = 2; i < g_count.load(); ++i) {
    text += "  #" + std::to_string(i - 2) + " " + Symbolize(g_frames[i]) + "\n";
  }
  return text;
}

}  // namespace trainguard
