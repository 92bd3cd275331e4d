// Reactor-level code: the deferred forms chain callbacks instead of blocking, and may be
// called from the reactor tasklet itself.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  net::listener l = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                    [](net::stream s) { s.write("220 ready\n"); });
  // [chain]
  r.call_later(0ms, [&] {  // in the reactor tasklet: no blocking here
    net::connect_tcp(r, "127.0.0.1", l.port())
        .add_callback([&](net::stream s) {
          return s.async_read_line().add_timeout(1s, r);  // the chain waits for this deferred
        })
        .add_callbacks([](std::string greeting) { std::printf("greeting: %s\n", greeting.c_str()); },
                       [](const failure& f) { std::printf("failed: %s\n", f.what().c_str()); })
        .add_both([&](outcome<void>) { r.stop(); });
  });
  r.run();
  // [chain]
}
