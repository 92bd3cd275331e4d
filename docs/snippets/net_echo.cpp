// A blocking-style echo server and client: one tasklet per connection, one reactor for all.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  reactor r;
  // [server]
  // Port 0: the system picks a free port; listener::port() tells which.
  net::listener server = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [](net::stream s) {  // runs in a new tasklet per connection
                                           for (;;) s.write(s.read_line() + "\n");
                                         });
  // [server]
  // [client]
  tasklet::spawn([&] {
    net::stream s = net::connect(r, "localhost", server.port());  // resolves without blocking the reactor
    for (const char* line : {"hello", "tasklets block, the reactor does not"}) {
      s.write(std::string(line) + "\n");
      std::printf("echoed: %s\n", s.read_line().c_str());
    }
    s.close();  // the server's read_line() throws end_of_stream: its tasklet ends quietly
    r.stop();
  });
  r.run();
  // [client]
}
