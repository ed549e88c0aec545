// LivenessBoard: what one rank knows of every rank's liveness and progress, and the words a
// verdict uses for a rank that went silent. Pure: no sockets, no MPI, no Torch; the time comes
// in as an argument, so tests drive it with made-up clocks. The transport (liveness.h) feeds it.
//
// The layout is a star: every rank beacons its progress to a hub (rank 0) over UDP; the hub
// answers each beacon with a digest of what it has heard from everyone. So the hub hears every
// rank directly, and every other rank hears the others through the hub:
//  - a rank the hub has not heard from for `silent_after_s` is silent, for the hub and, through
//    its digest, for every rank that still hears the hub: the connected ranks agree;
//  - a rank that has not heard the hub for `silent_after_s` is cut off from it: it counts the hub
//    and every rank it heard of through the hub as silent, and says that it may itself be the one
//    cut off.
// Messages: each rank sends one beacon per interval and gets the digest back. A digest holds a
// byte per rank plus at most kMaxDetails progress lines; it goes out as one or more parts, each a
// datagram of at most kMaxDatagramBytes (one Ethernet MTU less the IPv4 and UDP headers, so that
// no datagram is fragmented: a fragmented datagram is lost whole when any fragment is). Each part
// covers a contiguous range of ranks and stands alone: a lost part leaves the other ranks' state
// as the parts that arrived say. At 1,024 ranks a digest is 1 KB of states plus up to 32 detail
// lines of 40 to 190 bytes: two to five parts; at 2 beacons per second the hub takes 2,048
// beacons per second and answers each with a digest.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace trainguard {

using LivenessClock = std::chrono::steady_clock;

// What a rank is doing, as it tells the others.
struct Progress {
  // R: running; S: stopping (writing its bundle, diagnosing: it deserves the fault grace);
  // E: at the final rendezvous of the stop; L: left (exited on purpose).
  char state = 'R';
  int64_t step = 0;                   // global step; 0 between steps
  int32_t collective = 0;             // collectives begun in this step (or in this phase between steps)
  bool waiting = false;               // inside a collective's wait for the other ranks
  std::string phase;                  // between steps: what the rank does; when stopping: why
  LivenessClock::time_point since{};  // when this (state, step, collective, waiting) began, local clock
};

struct LivenessOptions {
  double beacon_interval_s = 0.5;  // a rank's beacons to the hub
  double silent_after_s = 3;       // a rank not heard for this long is silent
  // The hub's transport answers beacons with the same digest for this long before it builds a new
  // one (0: a new one for each beacon). A digest costs O(ranks) to build and every rank beacons,
  // so building one per beacon costs O(ranks^2) per second; reuse makes it O(ranks) and delays
  // what the digest says by at most this long.
  double digest_reuse_s = 0.1;
};

class LivenessBoard {
 public:
  static constexpr int kHub = 0;
  static constexpr size_t kMaxDetails = 32;          // progress lines in one digest (all its parts)
  static constexpr size_t kMaxDatagramBytes = 1472;  // UDP payload in one 1,500-byte Ethernet frame
  static constexpr size_t kMaxPhaseBytes = 96;       // phase text on the wire (longer is cut)

  // `hosts`: every rank's host name, rank order. `start`: when every rank was last known alive
  // (all took part in the collective that set the board up).
  LivenessBoard(int rank, std::vector<std::string> hosts, uint64_t nonce, LivenessOptions options,
                LivenessClock::time_point start);

  int rank() const { return rank_; }
  int world() const { return static_cast<int>(hosts_.size()); }
  const std::string& host(int rank) const { return hosts_[rank]; }

  // This rank's own progress (kept in its own entry; `since` must be set by the caller).
  void SetOwn(const Progress& progress);
  const Progress& own() const { return peers_[rank_].progress; }

  // The beacon this rank sends to the hub now.
  std::string Beacon(LivenessClock::time_point now) const;
  // The hub's answer to whoever sent a beacon: this board as the hub sees it, as the datagrams
  // (parts) to send, each at most kMaxDatagramBytes, covering every rank once in rank order.
  std::vector<std::string> Digest(LivenessClock::time_point now) const;
  // Takes a datagram (a beacon at the hub, a digest part elsewhere) received at `now`; returns the
  // sender's rank, or -1 when it is not one of this job's (another job's nonce, garbage).
  int Take(const std::string& datagram, LivenessClock::time_point now);

  // Ranks this rank counts as silent at `now` (never itself; a rank that left is not silent).
  // Elsewhere than at the hub: a rank the hub's digest calls silent, every rank when the hub is
  // lost, and a rank no digest part has covered for silent_after_s while other parts arrived.
  std::set<int> Silent(LivenessClock::time_point now) const;
  // Seconds the longest-silent rank has been silent at `now` (0 when none is).
  double LongestSilence(LivenessClock::time_point now) const;
  // True for a rank other than the hub that has not heard the hub for silent_after_s.
  bool HubLost(LivenessClock::time_point now) const;
  // Whether the channel has carried anything to this rank yet (the hub: a beacon of any rank;
  // others: a digest). Silence is judged only between ranks that have heard each other once, so
  // that a network that drops UDP altogether makes no one silent.
  bool Connected() const;
  // Whether `rank` said it left (exited on purpose).
  bool Left(int rank) const { return peers_[rank].progress.state == 'L'; }
  // Whether every other rank is silent, has left or is at the final rendezvous (state E): no one
  // will come to a rendezvous that has not completed yet.
  bool NoOneToWaitFor(LivenessClock::time_point now) const;
  // Whether another rank that is not silent says it is stopping (state S: writing its bundle,
  // diagnosing): the one kind of rank the others give the fault grace.
  bool AnyStopping(LivenessClock::time_point now) const;
  // One phrase on `rank` for a verdict, e.g. "rank 1 (host h2) silent for 6.1 s, last seen in
  // step 52, waiting in its collective 3 of the step for 0.4 s".
  std::string Describe(int rank, LivenessClock::time_point now) const;
  // "rank 1 (host h2)".
  std::string Name(int rank) const;

 private:
  struct Peer {
    Progress progress;
    // Hub: the last beacon. Others: for a rank the hub calls silent, when the hub last heard it;
    // for any other, the last digest part that covered it (the hub vouched for it then).
    LivenessClock::time_point heard;
    bool silent_at_hub = false;  // others: the hub's digest said so
    bool detailed = false;       // progress known (beacon, or a digest's detail line)
    bool ever_heard = false;     // hub: a beacon came once (the channel works for it)
  };
  int TakeBeacon(std::istringstream& in, LivenessClock::time_point now);
  int TakeDigest(std::istringstream& in, LivenessClock::time_point now);
  bool SilentAtHub(int rank, LivenessClock::time_point now) const;
  // Others: no digest part has covered `rank` for silent_after_s, though the hub is heard.
  bool Uncovered(int rank, LivenessClock::time_point now) const;
  std::string ProgressLine(int rank, LivenessClock::time_point now) const;
  std::string DetailLine(int rank, LivenessClock::time_point now) const;  // one rank's line in a digest

  int rank_;
  std::vector<std::string> hosts_;
  uint64_t nonce_;
  LivenessOptions options_;
  std::vector<Peer> peers_;
  LivenessClock::time_point hub_heard_;  // others: the last digest
  bool hub_ever_heard_ = false;          // others: a digest came once
};

// "3.2" (seconds, one decimal).
std::string Seconds(double s);

}  // namespace trainguard
