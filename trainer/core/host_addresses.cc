// This host's IPv4 addresses (see host_addresses.h).
#include "trainer/core/host_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>

namespace trainguard {
namespace {

bool IsLoopback(const in_addr& a) { return (ntohl(a.s_addr) >> 24) == 127; }

std::string Text(const in_addr& a) {
  char text[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

}  // namespace

std::string HostName() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) return "?";
  return host;
}

std::vector<std::string> HostAddresses() {
  std::vector<std::string> found;
  auto add = [&found](const in_addr& a) {
    const std::string text = Text(a);
    if (!IsLoopback(a) && std::find(found.begin(), found.end(), text) == found.end()) found.push_back(text);
  };
  const std::string host = HostName();
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* resolved = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &resolved) == 0) {
    for (addrinfo* a = resolved; a != nullptr; a = a->ai_next)
      add(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr);
    freeaddrinfo(resolved);
  }
  ifaddrs* interfaces = nullptr;
  if (getifaddrs(&interfaces) == 0) {
    for (ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET)
        add(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr);
    }
    freeifaddrs(interfaces);
  }
  found.push_back("127.0.0.1");
  return found;
}

}  // namespace trainguard
