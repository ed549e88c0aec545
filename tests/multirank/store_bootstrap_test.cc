// The TCPStore bootstrap of the NCCL plane, which runs on the CPU: every rank reaches rank 0's
// store through the addresses it offers. Run by dist.np2/np3 on one host, and across simulated
// hosts by the multihost tests (where rank 0's host name resolves to an address the others
// cannot reach, so that only the fallback to its other addresses connects them).
#include "trainer/comm/store_bootstrap.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"

namespace trainguard {
namespace {

TEST(StoreBootstrap, EveryRankReachesRankZerosStoreAndSeesTheOthersKeys) {
  MpiControlPlane control(MPI_COMM_WORLD);
  auto store = ConnectStore(control, "", 0, 30);
  const std::string mine = "rank" + std::to_string(control.rank());
  const std::string value = HostName();
  store->set(mine, std::vector<uint8_t>(value.begin(), value.end()));
  std::vector<std::string> keys;
  for (int r = 0; r < control.world(); ++r) keys.push_back("rank" + std::to_string(r));
  store->wait(keys);
  const std::vector<std::string> hosts = control.AllGather(value);
  for (int r = 0; r < control.world(); ++r) {
    const auto got = store->get(keys[r]);
    EXPECT_EQ(std::string(got.begin(), got.end()), hosts[r])
        << "rank " << r << "'s key, read by rank " << control.rank();
  }
  std::vector<int64_t> done{1};
  control.AllReduceSum(done);  // rank 0's store outlives every other rank's last read
}

// A TCP socket listening on a free loopback-and-everywhere port; its port in `port`.
int Listener(int& port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t size = sizeof at;
  if (bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 || listen(fd, 4) != 0) return -1;
  getsockname(fd, reinterpret_cast<sockaddr*>(&at), &size);
  port = ntohs(at.sin_port);
  return fd;
}

// Rank 0's free port (found by binding 0 and letting go), the same on every rank.
int FreePortOfRankZero(MpiControlPlane& control) {
  std::string text;
  if (control.rank() == 0) {
    int port = 0;
    close(Listener(port));
    text = std::to_string(port);
  }
  control.Broadcast(text, 0);
  return std::stoi(text);
}

TEST(StoreBootstrap, RankZerosStoreListensOnTheSetPort) {
  MpiControlPlane control(MPI_COMM_WORLD);
  const int port = FreePortOfRankZero(control);
  auto store = ConnectStore(control, "127.0.0.1", static_cast<uint16_t>(port), 30);
  EXPECT_EQ(FirstReachable({"127.0.0.1"}, port, 1.0), "127.0.0.1") << "nothing listens on --store-port " << port;
  const std::string mine = "rank" + std::to_string(control.rank());
  store->set(mine, std::vector<uint8_t>{1});
  store->wait({"rank0"});
  std::vector<int64_t> done{1};
  control.AllReduceSum(done);
}

TEST(StoreBootstrap, ATakenPortStopsEveryRankWithAnErrorNamingTheFlagAndThePort) {
  MpiControlPlane control(MPI_COMM_WORLD);
  int port = 0;
  int held = -1;
  std::string text;
  if (control.rank() == 0) {
    held = Listener(port);  // another process's server, as far as the store can tell
    text = std::to_string(port);
  }
  control.Broadcast(text, 0);
  port = std::stoi(text);
  const std::string expected = "--store-port " + text + ": rank 0 cannot open its TCPStore on TCP port " + text +
                               " (in use, or privileged): pick a free port";
  try {
    ConnectStore(control, "127.0.0.1", static_cast<uint16_t>(port), 30);
    ADD_FAILURE() << "ConnectStore opened a store on a port in use";
  } catch (const ConfigError& e) {
    EXPECT_EQ(control.rank(), 0);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  } catch (const PeerError& e) {
    EXPECT_NE(control.rank(), 0);
    EXPECT_EQ(e.origin(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  if (held >= 0) close(held);
}

TEST(StoreBootstrap, FirstReachableSkipsAddressesThatDoNotAnswer) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof at;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  getsockname(listener, reinterpret_cast<sockaddr*>(&at), &size);
  const int port = ntohs(at.sin_port);
  // 192.0.2.1 (TEST-NET) is routed nowhere: refused at once, or dropped until the timeout.
  EXPECT_EQ(FirstReachable({"192.0.2.1", "not-an-address", "127.0.0.1"}, port, 0.5), "127.0.0.1");
  EXPECT_EQ(FirstReachable({"192.0.2.1", "not-an-address"}, port, 0.5), "");
  EXPECT_EQ(FirstReachable({}, port, 0.5), "");
  close(listener);
}

}  // namespace
}  // namespace trainguard
