// The liveness channel at scale: the real hub (Liveness: its thread, its UDP socket, its digests)
// against world - 1 simulated ranks in a few processes on loopback. Each simulated rank is a
// LivenessBoard with its own UDP socket (the hub answers a beacon to the address it came from),
// beaconing every beacon_interval_s with a changing step, as a training rank does. After a warm-up
// the hub process's CPU time is read over a window in which its main thread sleeps; then one rank
// (world / 2) stops beaconing, and every other board is watched until it calls that rank silent
// and until its LongestSilence() reaches --verdict-s. Prints one table row (see Header()).
//   build/bench/liveness_bench --world 1024 [--procs 4] [--measure-s 10] [--digest-reuse-ms 100]
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/faults/liveness.h"
#include "diagnostics/faults/liveness_board.h"

namespace trainguard {
namespace {

using Clock = LivenessClock;
using std::chrono::duration;
using std::chrono::milliseconds;

constexpr uint64_t kNonce = 20261208;

struct Settings {
  int world = 64;
  int procs = 4;             // processes simulating ranks 1 .. world - 1
  double warmup_s = 4;       // before the CPU window: every rank connected
  double measure_s = 10;     // the CPU window
  double verdict_s = 6;      // the silence verdict's threshold on LongestSilence()
  int digest_reuse_ms = -1;  // the hub's LivenessOptions::digest_reuse_s in ms (-1: its default)
};

double Since(Clock::time_point from, Clock::time_point to) { return duration<double>(to - from).count(); }

std::vector<std::string> Hosts(int world) {
  std::vector<std::string> hosts;
  for (int r = 0; r < world; ++r) hosts.push_back("sim-" + std::to_string(r / 8));
  return hosts;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// What one simulating process saw, sent to the hub's process as one text line.
struct SimResult {
  int64_t beacons = 0, beacon_bytes = 0, beacon_max = 0;
  int64_t parts = 0, part_bytes = 0, part_max = 0;
  int64_t false_silent = 0;                   // a board called a rank other than the victim silent
  double victim_last_beacon = -1;             // seconds after t0, where the victim lives
  double silent_last = -1;                    // seconds after t0: the last board to call the victim silent
  double verdict_last = -1;                   // ... and to reach verdict_s of LongestSilence()
  int64_t silent_seen = 0, verdict_seen = 0;  // boards that did
  int64_t boards = 0;
  std::string Line() const {
    std::ostringstream out;
    out << beacons << ' ' << beacon_bytes << ' ' << beacon_max << ' ' << parts << ' ' << part_bytes << ' ' << part_max
        << ' ' << false_silent << ' ' << victim_last_beacon << ' ' << silent_last << ' ' << verdict_last << ' '
        << silent_seen << ' ' << verdict_seen << ' ' << boards << '\n';
    return out.str();
  }
  static SimResult Parse(const std::string& line) {
    SimResult r;
    std::istringstream in(line);
    in >> r.beacons >> r.beacon_bytes >> r.beacon_max >> r.parts >> r.part_bytes >> r.part_max >> r.false_silent >>
        r.victim_last_beacon >> r.silent_last >> r.verdict_last >> r.silent_seen >> r.verdict_seen >> r.boards;
    return r;
  }
};

// Simulates ranks [first, last) against the hub at 127.0.0.1:`hub_port`; the victim stops
// beaconing at `stop`; returns at `end`.
SimResult Simulate(const Settings& s, int first, int last, uint16_t hub_port, Clock::time_point t0,
                   Clock::time_point stop, Clock::time_point end) {
  const int victim = s.world / 2;
  const LivenessOptions options;
  const auto interval = std::chrono::duration_cast<Clock::duration>(duration<double>(options.beacon_interval_s));
  const std::vector<std::string> hosts = Hosts(s.world);
  struct Rank {
    int rank;
    int fd;
    LivenessBoard board;
    Clock::time_point next;
    double silent_at = -1, verdict_at = -1;
  };
  std::optional<sockaddr_storage> hub;
  std::vector<Rank> ranks;
  ranks.reserve(static_cast<size_t>(last - first));
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int r = first; r < last; ++r) {
    const int fd = OpenLivenessSocket(0);
    if (r == first) hub = LivenessAddress(fd, "127.0.0.1", hub_port);  // as every socket here sends to it
    // Beacons spread over the interval, as ranks that started at different moments.
    const auto offset = std::chrono::duration_cast<Clock::duration>(interval * (static_cast<double>(r) / s.world));
    ranks.push_back({r, fd, LivenessBoard(r, hosts, kNonce, options, t0), t0 + offset});
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u32 = static_cast<uint32_t>(ranks.size() - 1);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
  }
  SimResult out;
  out.boards = static_cast<int64_t>(ranks.size());
  std::vector<epoll_event> events(256);
  char buffer[65536];
  auto next_verdict_check = stop;
  while (Clock::now() < end) {
    auto now = Clock::now();
    for (Rank& k : ranks) {
      if (now < k.next) continue;
      if (k.rank == victim && now >= stop) continue;  // silent from now on
      Progress p;
      p.step = static_cast<int64_t>(Since(t0, now) / 0.2);  // a step every 0.2 s, half of it in the all-reduce
      p.waiting = p.step % 2 == 1;
      p.collective = p.waiting ? 1 : 0;
      p.since = now;
      k.board.SetOwn(p);
      const std::string beacon = k.board.Beacon(now);
      sendto(k.fd, beacon.data(), beacon.size(), 0, reinterpret_cast<const sockaddr*>(&*hub),
             hub->ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
      if (k.rank == victim) out.victim_last_beacon = Since(t0, now);
      ++out.beacons;
      out.beacon_bytes += static_cast<int64_t>(beacon.size());
      out.beacon_max = std::max<int64_t>(out.beacon_max, static_cast<int64_t>(beacon.size()));
      k.next += interval;
    }
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 5);
    now = Clock::now();
    for (int i = 0; i < n; ++i) {
      Rank& k = ranks[events[static_cast<size_t>(i)].data.u32];
      for (;;) {
        const ssize_t got = recv(k.fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (got <= 0) break;
        ++out.parts;
        out.part_bytes += got;
        out.part_max = std::max<int64_t>(out.part_max, got);
        k.board.Take(std::string(buffer, static_cast<size_t>(got)), now);
      }
      if (k.rank == victim) continue;
      const std::set<int> silent = k.board.Silent(now);
      for (int r : silent) out.false_silent += r != victim ? 1 : 0;
      if (k.silent_at < 0 && silent.count(victim) != 0) k.silent_at = Since(t0, now);
    }
    if (now >= next_verdict_check) {  // LongestSilence() grows with time alone: looked at every 20 ms
      for (Rank& k : ranks) {
        if (k.rank != victim && k.silent_at >= 0 && k.verdict_at < 0 && k.board.LongestSilence(now) >= s.verdict_s) {
          k.verdict_at = Since(t0, now);
        }
      }
      next_verdict_check = now + milliseconds(20);
    }
  }
  for (const Rank& k : ranks) {
    close(k.fd);
    if (k.rank == victim) continue;
    if (k.silent_at >= 0) ++out.silent_seen, out.silent_last = std::max(out.silent_last, k.silent_at);
    if (k.verdict_at >= 0) ++out.verdict_seen, out.verdict_last = std::max(out.verdict_last, k.verdict_at);
  }
  close(ep);
  return out;
}

// Microseconds one Digest() of a hub board of `world` ranks, every one heard, takes.
double DigestBuildUs(int world) {
  const auto t0 = Clock::now();
  const std::vector<std::string> hosts = Hosts(world);
  LivenessBoard hub(0, hosts, kNonce, {}, t0);
  LivenessBoard sender(1, hosts, kNonce, {}, t0);
  for (int r = 1; r < world; ++r) {
    LivenessBoard b(r, hosts, kNonce, {}, t0);
    Progress p;
    p.step = 7;
    p.waiting = r % 2 == 1;
    p.since = t0;
    b.SetOwn(p);
    hub.Take(b.Beacon(t0), t0);
  }
  const int n = 2000;
  size_t sink = 0;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) sink += hub.Digest(start + milliseconds(i)).size();
  const double us = Since(start, Clock::now()) * 1e6 / n;
  return sink > 0 ? us : -1;
}

int Run(const Settings& s) {
  const int hub_fd = OpenLivenessSocket(0);
  const uint16_t hub_port = BoundPort(hub_fd);
  const auto t0 = Clock::now() + milliseconds(1500);  // every process set up by then
  const auto measure_from = t0 + std::chrono::duration_cast<Clock::duration>(duration<double>(s.warmup_s));
  const auto stop = measure_from + std::chrono::duration_cast<Clock::duration>(duration<double>(s.measure_s));
  const auto end = stop + std::chrono::duration_cast<Clock::duration>(duration<double>(s.verdict_s + 3));
  std::vector<pid_t> children;
  std::vector<int> pipes;
  const int per = (s.world - 1 + s.procs - 1) / s.procs;
  for (int first = 1; first < s.world; first += per) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    const pid_t pid = fork();
    if (pid == 0) {
      close(hub_fd);
      close(fds[0]);
      const std::string line = Simulate(s, first, std::min(s.world, first + per), hub_port, t0, stop, end).Line();
      if (write(fds[1], line.data(), line.size()) < 0) _exit(1);
      _exit(0);
    }
    close(fds[1]);
    children.push_back(pid);
    pipes.push_back(fds[0]);
  }
  LivenessOptions options;
  if (s.digest_reuse_ms >= 0) options.digest_reuse_s = s.digest_reuse_ms / 1000.0;
  LivenessEndpoint endpoint;
  endpoint.rank = 0;
  endpoint.hosts = Hosts(s.world);
  endpoint.nonce = kNonce;
  endpoint.fd = hub_fd;
  Liveness hub(std::move(endpoint), options);
  std::this_thread::sleep_until(measure_from);
  const double cpu0 = CpuSeconds();
  const auto wall0 = Clock::now();
  std::this_thread::sleep_until(stop);
  const double hub_cpu = (CpuSeconds() - cpu0) / Since(wall0, Clock::now());
  double hub_silent = -1;
  while (Clock::now() < end) {
    if (hub_silent < 0 && hub.Silent().count(s.world / 2) != 0) hub_silent = Since(t0, Clock::now());
    std::this_thread::sleep_for(milliseconds(10));
  }
  SimResult all;
  for (size_t i = 0; i < pipes.size(); ++i) {
    std::string line;
    char chunk[512];
    for (ssize_t n; (n = read(pipes[i], chunk, sizeof chunk)) > 0;) line.append(chunk, static_cast<size_t>(n));
    close(pipes[i]);
    waitpid(children[i], nullptr, 0);
    const SimResult r = SimResult::Parse(line);
    all.beacons += r.beacons, all.beacon_bytes += r.beacon_bytes,
        all.beacon_max = std::max(all.beacon_max, r.beacon_max);
    all.parts += r.parts, all.part_bytes += r.part_bytes, all.part_max = std::max(all.part_max, r.part_max);
    all.false_silent += r.false_silent, all.silent_seen += r.silent_seen, all.verdict_seen += r.verdict_seen;
    all.boards += r.boards;
    all.victim_last_beacon = std::max(all.victim_last_beacon, r.victim_last_beacon);
    all.silent_last = std::max(all.silent_last, r.silent_last);
    all.verdict_last = std::max(all.verdict_last, r.verdict_last);
  }
  hub.Leave();
  const double last = all.victim_last_beacon;
  const int others = s.world - 2;  // every board but the hub's and the victim's
  std::printf(
      "| %d | %d | %.1f%% | %.1f | %.1f | %lld | %.0f | %lld | %.2f | %.0f | %.2f | %d/%d | %.2f | %d/%d | %.2f | %lld "
      "|\n",
      s.world, s.digest_reuse_ms < 0 ? static_cast<int>(LivenessOptions{}.digest_reuse_s * 1000) : s.digest_reuse_ms,
      100 * hub_cpu, DigestBuildUs(s.world), static_cast<double>(all.beacons) / Since(t0, end),
      static_cast<long long>(all.beacon_max), static_cast<double>(all.beacon_bytes) / std::max<int64_t>(1, all.beacons),
      static_cast<long long>(all.part_max), static_cast<double>(all.parts) / std::max<int64_t>(1, all.beacons),
      static_cast<double>(all.part_bytes) / std::max<int64_t>(1, all.parts), hub_silent - last,
      static_cast<int>(all.silent_seen), others, all.silent_last - last, static_cast<int>(all.verdict_seen), others,
      all.verdict_last - last, static_cast<long long>(all.false_silent));
  return all.silent_seen == others && all.verdict_seen == others ? 0 : 1;
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  trainguard::Settings s;
  CLI::App app{"the liveness hub against simulated ranks on loopback"};
  app.add_option("--world", s.world, "ranks, the hub included")->check(CLI::Range(3, 8192));
  app.add_option("--procs", s.procs, "processes simulating the other ranks")->check(CLI::Range(1, 64));
  app.add_option("--warmup-s", s.warmup_s, "seconds before the CPU window");
  app.add_option("--measure-s", s.measure_s, "seconds of the hub's CPU window");
  app.add_option("--verdict-s", s.verdict_s, "LongestSilence() of the silence verdict");
  app.add_option("--digest-reuse-ms", s.digest_reuse_ms,
                 "the hub rebuilds its digest at most this often (-1: default)");
  app.add_flag_callback("--header", [] {
    std::printf(
        "| ranks | digest reuse ms | hub CPU | digest build us | beacons/s | beacon max B | beacon mean B | part max B "
        "| "
        "parts per digest | part mean B | hub: silent after s | boards calling it silent | after s | boards at "
        "verdict | after s | false silent |\n");
  });
  CLI11_PARSE(app, argc, argv);
  return trainguard::Run(s);
}
