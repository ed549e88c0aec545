// The liveness board (see liveness_board.h). Wire format, text, one datagram each:
//   beacon       "TG2 B <nonce> <rank> <state> <step> <collective> <waiting> <age_ms> <phase>"
//   digest part  "TG2 D <nonce> <world> <first> <states>\n" then detail lines
//                "<rank> <state> <silent> <unheard_ms> <step> <collective> <waiting> <age_ms> <phase>\n"
// where <states> has one character per rank from <first> on (the part covers those ranks): its
// state, or Q when the hub counts it silent; the detail lines are of ranks the part covers; ages
// are milliseconds before the sender's now (no clocks are compared across hosts); a phase is at
// most kMaxPhaseBytes. TG1 (one digest datagram for every rank) is not understood.
#include "diagnostics/faults/liveness_board.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace trainguard {
namespace {

using Ms = std::chrono::milliseconds;

int64_t MsBetween(LivenessClock::time_point from, LivenessClock::time_point to) {
  return std::chrono::duration_cast<Ms>(to - from).count();
}

double SecondsBetween(LivenessClock::time_point from, LivenessClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

bool ValidState(char c) { return c == 'R' || c == 'S' || c == 'E' || c == 'L'; }

// The phase is the rest of the line, without its leading space.
std::string RestOfLine(std::istringstream& in) {
  std::string rest;
  std::getline(in, rest);
  if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
  return rest;
}

// The phase as it goes on the wire: one line, at most kMaxPhaseBytes, not cut inside a UTF-8
// character.
std::string WirePhase(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.size() > LivenessBoard::kMaxPhaseBytes) {
    size_t end = LivenessBoard::kMaxPhaseBytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text.resize(end);
  }
  return text;
}

constexpr char kMagic[] = "TG2";

}  // namespace

std::string Seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", s);
  return text;
}

LivenessBoard::LivenessBoard(int rank, std::vector<std::string> hosts, uint64_t nonce, LivenessOptions options,
                             LivenessClock::time_point start)
    : rank_(rank),
      hosts_(std::move(hosts)),
      nonce_(nonce),
      options_(options),
      peers_(hosts_.size()),
      hub_heard_(start) {
  for (auto& p : peers_) {
    p.heard = start;
    p.progress.since = start;
  }
  peers_[rank_].detailed = true;
}

void LivenessBoard::SetOwn(const Progress& progress) { peers_[rank_].progress = progress; }

std::string LivenessBoard::Beacon(LivenessClock::time_point now) const {
  const Progress& p = own();
  std::ostringstream out;
  out << kMagic << " B " << nonce_ << ' ' << rank_ << ' ' << p.state << ' ' << p.step << ' ' << p.collective << ' '
      << (p.waiting ? 1 : 0) << ' ' << MsBetween(p.since, now) << ' ' << WirePhase(p.phase);
  return out.str();
}

bool LivenessBoard::SilentAtHub(int rank, LivenessClock::time_point now) const {
  if (rank == kHub || peers_[rank].progress.state == 'L' || !peers_[rank].ever_heard) return false;
  return SecondsBetween(peers_[rank].heard, now) > options_.silent_after_s;
}

bool LivenessBoard::Uncovered(int rank, LivenessClock::time_point now) const {
  if (rank_ == kHub || rank == kHub || !hub_ever_heard_ || peers_[rank].silent_at_hub) return false;
  return SecondsBetween(peers_[rank].heard, now) > options_.silent_after_s;
}

std::string LivenessBoard::DetailLine(int r, LivenessClock::time_point now) const {
  const Peer& peer = peers_[r];
  const Progress& p = peer.progress;
  std::ostringstream out;
  out << r << ' ' << p.state << ' ' << (SilentAtHub(r, now) ? 1 : 0) << ' '
      << (r == kHub ? 0 : MsBetween(peer.heard, now)) << ' ' << p.step << ' ' << p.collective << ' '
      << (p.waiting ? 1 : 0) << ' ' << MsBetween(p.since, now) << ' ' << WirePhase(p.phase) << '\n';
  return out.str();
}

std::vector<std::string> LivenessBoard::Digest(LivenessClock::time_point now) const {
  // Details, most telling first: the hub, the silent, the stopping, then those not in a wait.
  std::vector<int> priority(world());
  std::vector<int> order;
  for (int r = 0; r < world(); ++r) {
    const bool silent = SilentAtHub(r, now);
    priority[r] = r == kHub ? 0 : silent ? 1 : peers_[r].progress.state != 'R' ? 2 : peers_[r].progress.waiting ? 4 : 3;
    if (peers_[r].detailed && priority[r] < 4) order.push_back(r);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return priority[a] < priority[b]; });
  if (order.size() > kMaxDetails) order.resize(kMaxDetails);
  std::vector<std::string> details(world());
  for (int r : order) details[r] = DetailLine(r, now);

  // Parts: ranks in order, each part as many as fit. The header's <first> is at most as long as
  // <world>, so a header written with <world> twice is never shorter than the real one.
  const std::string prefix = std::string(kMagic) + " D " + std::to_string(nonce_) + ' ' + std::to_string(world()) + ' ';
  const size_t header_bytes = prefix.size() + std::to_string(world()).size() + 2;  // "<first> " and '\n'
  std::vector<std::string> parts;
  int first = 0;
  while (first < world()) {
    std::string states;
    std::string lines;
    int r = first;
    for (; r < world(); ++r) {
      const char state = SilentAtHub(r, now) ? 'Q' : peers_[r].progress.state;
      if (r > first && header_bytes + states.size() + 1 + lines.size() + details[r].size() > kMaxDatagramBytes) break;
      states += state;
      lines += details[r];
    }
    parts.push_back(prefix + std::to_string(first) + ' ' + states + '\n' + lines);
    first = r;
  }
  return parts;
}

int LivenessBoard::Take(const std::string& datagram, LivenessClock::time_point now) {
  std::istringstream in(datagram);
  std::string magic, type;
  uint64_t nonce = 0;
  if (!(in >> magic >> type >> nonce) || magic != kMagic || nonce != nonce_) return -1;
  if (type == "B" && rank_ == kHub) return TakeBeacon(in, now);
  if (type == "D" && rank_ != kHub) return TakeDigest(in, now);
  return -1;
}

int LivenessBoard::TakeBeacon(std::istringstream& in, LivenessClock::time_point now) {
  int from = -1, waiting = 0;
  char state = 0;
  int64_t step = 0, age_ms = 0;
  int32_t collective = 0;
  if (!(in >> from >> state >> step >> collective >> waiting >> age_ms)) return -1;
  if (from <= 0 || from >= world() || !ValidState(state)) return -1;
  Peer& peer = peers_[from];
  peer.heard = now;
  peer.detailed = true;
  peer.ever_heard = true;
  peer.progress = {state, step, collective, waiting != 0, RestOfLine(in), now - Ms(age_ms)};
  return from;
}

int LivenessBoard::TakeDigest(std::istringstream& in, LivenessClock::time_point now) {
  int world_there = 0, first = -1;
  std::string states;
  if (!(in >> world_there >> first >> states) || world_there != world() || first < 0 ||
      states.size() > static_cast<size_t>(world() - first) || states.empty()) {
    return -1;
  }
  in.ignore(1);  // the end of the first line
  const int end = first + static_cast<int>(states.size());
  hub_heard_ = now;
  hub_ever_heard_ = true;
  for (int r = first; r < end; ++r) {
    if (r == rank_) continue;
    Peer& peer = peers_[r];
    const char state = states[r - first];
    peer.silent_at_hub = state == 'Q';
    if (peer.silent_at_hub) continue;
    if (ValidState(state)) peer.progress.state = state;
    peer.heard = now;
    peer.detailed = false;  // until a detail line below says what it does (a silent rank keeps its last)
  }
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream detail(line);
    int r = -1, silent = 0, waiting = 0;
    char state = 0;
    int64_t unheard_ms = 0, step = 0, age_ms = 0;
    int32_t collective = 0;
    if (!(detail >> r >> state >> silent >> unheard_ms >> step >> collective >> waiting >> age_ms)) continue;
    if (r < first || r >= end || r == rank_ || !ValidState(state)) continue;
    Peer& peer = peers_[r];
    if (peer.silent_at_hub) peer.heard = now - Ms(unheard_ms);  // others: vouched for now, above
    peer.detailed = true;
    peer.progress = {state, step, collective, waiting != 0, RestOfLine(detail), now - Ms(age_ms)};
  }
  return kHub;
}

bool LivenessBoard::HubLost(LivenessClock::time_point now) const {
  return rank_ != kHub && hub_ever_heard_ && peers_[kHub].progress.state != 'L' &&
         SecondsBetween(hub_heard_, now) > options_.silent_after_s;
}

std::set<int> LivenessBoard::Silent(LivenessClock::time_point now) const {
  std::set<int> silent;
  const bool hub_lost = HubLost(now);
  for (int r = 0; r < world(); ++r) {
    if (r == rank_ || Left(r)) continue;
    const bool is_silent =
        rank_ == kHub ? SilentAtHub(r, now) : (hub_lost || peers_[r].silent_at_hub || Uncovered(r, now));
    if (is_silent) silent.insert(r);
  }
  return silent;
}

double LivenessBoard::LongestSilence(LivenessClock::time_point now) const {
  if (HubLost(now)) return SecondsBetween(hub_heard_, now);
  double longest = 0;
  for (int r : Silent(now)) longest = std::max(longest, SecondsBetween(peers_[r].heard, now));
  return longest;
}

bool LivenessBoard::NoOneToWaitFor(LivenessClock::time_point now) const {
  const std::set<int> silent = Silent(now);
  for (int r = 0; r < world(); ++r) {
    if (r == rank_ || silent.count(r) != 0) continue;
    const char state = peers_[r].progress.state;
    if (state != 'L' && state != 'E') return false;
  }
  return true;
}

bool LivenessBoard::Connected() const {
  if (rank_ != kHub) return hub_ever_heard_;
  for (const Peer& p : peers_) {
    if (p.ever_heard) return true;
  }
  return false;
}

bool LivenessBoard::AnyStopping(LivenessClock::time_point now) const {
  const std::set<int> silent = Silent(now);
  for (int r = 0; r < world(); ++r) {
    if (r != rank_ && silent.count(r) == 0 && peers_[r].progress.state == 'S') return true;
  }
  return false;
}

std::string LivenessBoard::Name(int rank) const {
  return "rank " + std::to_string(rank) + " (host " + hosts_[rank] + ")";
}

std::string LivenessBoard::ProgressLine(int rank, LivenessClock::time_point now) const {
  const Progress& p = peers_[rank].progress;
  const std::string since = Seconds(SecondsBetween(p.since, now)) + " s";
  const std::string c = std::to_string(p.collective);
  switch (p.state) {
    case 'S':
      return "stopping (" + p.phase + ") for " + since;
    case 'E':
      return "at the end of its stop, waiting for the others for " + since;
    case 'L':
      return "exited";
    default:
      break;
  }
  std::string where = p.step > 0 ? "in step " + std::to_string(p.step) : "in " + p.phase;
  if (p.waiting)
    return where + ", waiting in its collective " + c + (p.step > 0 ? " of the step" : "") + " for " + since;
  if (p.collective == 0) return where + ", computing (before its first collective) for " + since;
  return where + ", computing after its collective " + c + " for " + since;
}

std::string LivenessBoard::Describe(int rank, LivenessClock::time_point now) const {
  const Peer& peer = peers_[rank];
  if (Left(rank)) return Name(rank) + " has exited";
  const std::string last_seen = peer.detailed ? "; last seen " + ProgressLine(rank, now) : "";
  if (HubLost(now)) {
    if (rank == kHub) {
      return Name(rank) + " silent for " + Seconds(SecondsBetween(hub_heard_, now)) +
             " s (this rank hears the others only through it)" + last_seen;
    }
    return Name(rank) + " unknown: heard only through rank 0, which is silent" + last_seen;
  }
  if (Uncovered(rank, now)) {
    return Name(rank) + " not heard of for " + Seconds(SecondsBetween(peer.heard, now)) +
           " s (rank 0's digests about it were lost)" + last_seen;
  }
  if (Silent(now).count(rank) != 0) {
    return Name(rank) + " silent for " + Seconds(SecondsBetween(peer.heard, now)) + " s" + last_seen;
  }
  return Name(rank) + " alive" + (peer.detailed ? ", " + ProgressLine(rank, now) : "");
}

}  // namespace trainguard
