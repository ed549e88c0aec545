// Liveness: every rank's progress, shared on a side channel that does not depend on MPI's or
// NCCL's progress, so that a rank blocked in a collective still learns which peers went silent
// (gone, frozen, or cut off the network) and what each was last doing. A thread with its own UDP
// socket runs the star of liveness_board.h: ranks beacon to rank 0, rank 0 answers with digests.
//
// PeerView is what the fault watch and the stop protocol use of it; Liveness is the real one, and
// tests give the watch a view of their own.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/faults/liveness_board.h"
#include "trainer/core/control_plane.h"

namespace trainguard {

class PeerView {
 public:
  virtual ~PeerView() = default;
  // This rank's progress, for the others to see (`since` is set here when anything but the phase
  // text changed). Thread-safe, cheap: called at every collective.
  virtual void Report(const Progress& progress) = 0;
  virtual std::set<int> Silent() = 0;   // see LivenessBoard::Silent
  virtual double LongestSilence() = 0;  // see LivenessBoard::LongestSilence
  virtual bool HubLost() = 0;           // this rank no longer hears rank 0
  virtual bool NoOneToWaitFor() = 0;    // see LivenessBoard::NoOneToWaitFor
  virtual bool AnyStopping() = 0;       // see LivenessBoard::AnyStopping
  virtual std::string Describe(int rank) = 0;
  virtual std::string Name(int rank) = 0;  // "rank 1 (host h2)"
  virtual std::string Host(int rank) = 0;  // "h2"
};

// What one rank's channel runs on: found by the collective constructor of Liveness in a job, or
// given directly (the benchmark, which simulates many ranks in a few processes without MPI).
struct LivenessEndpoint {
  int rank = 0;
  std::vector<std::string> hosts;               // every rank's host name, rank order
  uint64_t nonce = 0;                           // this job's, in every datagram (another job's are refused)
  int fd = -1;                                  // this rank's UDP socket (OpenLivenessSocket); Liveness closes it
  std::vector<sockaddr_storage> hub_addresses;  // rank 0's addresses with its port (empty for rank 0)
};

// A non-blocking UDP socket bound on every interface to `port` (0: any free port): IPv6 and IPv4
// in one (dual-stack, IPv4 peers as ::ffff:a.b.c.d) where the kernel has IPv6, else IPv4 only.
// Throws ConfigError naming --liveness-port when `port` is set and taken or not allowed, CommError
// when no socket can be had.
int OpenLivenessSocket(uint16_t port);
// `address` (numeric IPv4 or IPv6) with `port`, as the socket `fd` sends to it; nullopt when the
// text is no address or an IPv6 one and `fd` is IPv4 only.
std::optional<sockaddr_storage> LivenessAddress(int fd, const std::string& address, uint16_t port);
// The port `fd` is bound to.
uint16_t BoundPort(int fd);

class Liveness final : public PeerView {
 public:
  // Collective over `control`: rank 0 opens its socket on `hub_port` (0: any free port) and
  // offers its IPv4 addresses (`hub_addr` alone when not empty), every rank says its host name;
  // then the thread starts. Throws on every rank when one cannot make its socket (its own error
  // there, PeerError elsewhere).
  Liveness(ControlPlane& control, LivenessOptions options, const std::string& hub_addr, uint16_t hub_port);
  // Starts the thread on `endpoint` (no collective). Every rank of the job must use the same
  // hosts, nonce and hub.
  Liveness(LivenessEndpoint endpoint, LivenessOptions options);
  ~Liveness() override;  // Leave(), if not done
  Liveness(const Liveness&) = delete;
  Liveness& operator=(const Liveness&) = delete;

  void Report(const Progress& progress) override;
  std::set<int> Silent() override;
  double LongestSilence() override;
  bool HubLost() override;
  bool NoOneToWaitFor() override;
  bool AnyStopping() override;
  std::string Describe(int rank) override;
  std::string Name(int rank) override;
  std::string Host(int rank) override;

  // Tells the others that this rank exits on purpose (state L; the hub tells every rank it has
  // heard from), then stops the thread. Bounded by a few milliseconds; idempotent.
  void Leave();

 private:
  void Start(LivenessEndpoint endpoint);
  void Run();
  void SendBeacon(LivenessClock::time_point now);
  void Receive(LivenessClock::time_point now);
  void SendTo(const sockaddr_storage& to, const std::string& bytes);

  static constexpr int kConnectWithinS = 10;  // no contact by then: the warning that the channel fails

  int fd_ = -1;
  uint16_t hub_port_ = 0;
  std::vector<sockaddr_storage> hub_candidates_;  // rank 0's addresses, until one answers
  std::optional<sockaddr_storage> hub_;           // the address rank 0 answered from
  std::map<int, sockaddr_storage> senders_;       // hub: where each rank's beacons come from
  std::vector<std::string> digest_;               // hub: the digest it answers with, built at digest_built_
  LivenessClock::time_point digest_built_{};
  std::mutex mutex_;  // guards board_, hub_, senders_, digest_
  std::unique_ptr<LivenessBoard> board_;
  LivenessOptions options_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace trainguard
