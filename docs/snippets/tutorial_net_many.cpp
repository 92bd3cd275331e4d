// Three clients at once: each connection is a tasklet that waits on its own, so the waits overlap.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  net::listener server = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [](net::stream s) {  // one tasklet per connection
                                           std::string name = s.read_line();
                                           sleep(50ms);  // a slow lookup: blocks this connection only
                                           s.write("hello, " + name + "\n");
                                         });
  auto ask = deferred_tasklet([&](const std::string& name) {  // one tasklet per client
    net::stream s = net::connect(r, "127.0.0.1", server.port());
    s.write(name + "\n");
    return s.read_line();
  });
  time_point start = r.now();
  std::vector<deferred<std::string>> replies{ask("ada"), ask("bob"), ask("cy")};
  for (const std::string& reply : block_on(gather_results(replies))) std::printf("%s\n", reply.c_str());
  std::printf("three 50 ms requests took %s\n", r.now() - start < 150ms ? "less than 150 ms" : "150 ms or more");
}
