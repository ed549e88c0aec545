// PushToGateway on a detached thread with a deadline; Pushgateway URL parsing (see push.h).
#include "diagnostics/metrics/push.h"

#include <curl/curl.h>
#include <prometheus/gateway.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <future>
#include <thread>

namespace trainguard {

std::string ParsePushgatewayUrl(const std::string& url, GatewayAddress* address) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "no scheme (write http://HOST:PORT)";
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return "scheme '" + scheme + "' is not http or https";
  std::string rest = url.substr(scheme_end + 3);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#@") != std::string::npos) {
    return "only http://HOST:PORT is supported (no path, query or user)";
  }
  std::string host = rest;
  std::string port = scheme == "https" ? "443" : "80";
  // The port follows the last ':' that is not inside an IPv6 literal's brackets.
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (rest.find(']') == std::string::npos || colon > rest.find(']'))) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    const bool digits = !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) return "bad port '" + port + "'";
  }
  if (host.empty() || host == "[]") return "no host";
  address->host = scheme + "://" + host;
  address->port = port;
  return "";
}

std::string PushToGateway(const std::shared_ptr<prometheus::Registry>& registry, const std::string& url,
                          const std::string& job, int rank, double timeout_s) {
  const std::string what = "metrics push to " + url + " (job " + job + ", rank " + std::to_string(rank) + ")";
  GatewayAddress address;
  const std::string bad_url = ParsePushgatewayUrl(url, &address);
  if (!bad_url.empty()) return what + " skipped: " + bad_url;
  // The thread owns everything it touches (the registry through a shared_ptr), so a push that
  // overruns the deadline outlives this call, and even the Metrics, safely.
  auto task = std::make_shared<std::packaged_task<int()>>([registry, address, job, rank] {
    prometheus::Gateway gateway(address.host, address.port, job, {{"rank", std::to_string(rank)}});
    gateway.RegisterCollectable(registry);
    // PushAdd, not Push: in prometheus-cpp 1.0.1 PushAdd() sends PUT, which replaces the whole
    // group job/rank (a series this run no longer has disappears), and Push() sends POST, which
    // replaces only the metric names pushed: the reverse of the Pushgateway's own naming.
    return gateway.PushAdd();
  });
  std::future<int> result = task->get_future();
  try {
    std::thread([task] { (*task)(); }).detach();
  } catch (const std::exception& e) {
    return what + " failed: cannot start its thread: " + e.what();
  }
  const auto timeout = std::chrono::duration<double>(timeout_s);
  if (result.wait_for(timeout) != std::future_status::ready) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", timeout_s);
    return what + " failed: no answer within " + seconds + " s (push timeout); training goes on";
  }
  int code = 0;
  try {
    code = result.get();
  } catch (const std::exception& e) {
    return what + " failed: " + e.what();
  }
  if (code >= 200 && code < 300) return "";
  if (code < 0) {
    return what + " failed: " + curl_easy_strerror(static_cast<CURLcode>(-code)) + " (curl error " +
           std::to_string(-code) + "); is the Pushgateway running at that address?";
  }
  return what + " failed: the Pushgateway answered HTTP " + std::to_string(code);
}

}  // namespace trainguard
