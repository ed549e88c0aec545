// This host's addresses (see host_addresses.h).
#include "trainer/core/host_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>

namespace trainguard {
namespace {

// The numeric text of `address` when other hosts may reach this one at it, else "": not a
// loopback address, nor an IPv6 link-local one (it needs an interface name to be reached).
std::string Offered(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address->sa_family == AF_INET) {
    const in_addr& a = reinterpret_cast<const sockaddr_in*>(address)->sin_addr;
    if ((ntohl(a.s_addr) >> 24) == 127) return "";
    inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
  }
  const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_LINKLOCAL(&a) || IN6_IS_ADDR_V4MAPPED(&a)) return "";
  inet_ntop(AF_INET6, &a, text, sizeof text);
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
  auto add = [&found](const std::string& text) {
    if (!text.empty() && std::find(found.begin(), found.end(), text) == found.end()) found.push_back(text);
  };
  const std::string host = HostName();
  // IPv4 first; IPv6 only on a host without a non-loopback IPv4 address (an IPv6-only pod).
  for (const int family : {AF_INET, AF_INET6}) {
    if (family == AF_INET6 && !found.empty()) break;
    addrinfo hints{};
    hints.ai_family = family;
    addrinfo* resolved = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &resolved) == 0) {
      for (addrinfo* a = resolved; a != nullptr; a = a->ai_next) add(Offered(a->ai_addr));
      freeaddrinfo(resolved);
    }
    ifaddrs* interfaces = nullptr;
    if (getifaddrs(&interfaces) == 0) {
      for (ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == family) add(Offered(i->ifa_addr));
      }
      freeifaddrs(interfaces);
    }
  }
  const bool ipv6 = !found.empty() && found.front().find(':') != std::string::npos;
  found.push_back("127.0.0.1");
  if (ipv6 || found.size() == 1) found.push_back("::1");  // a single node without IPv4 loopback
  return found;
}

}  // namespace trainguard
