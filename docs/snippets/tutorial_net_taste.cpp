// twistlet in a few lines: connections are tasklets running plain sequential code.
#include <twistlet/twistlet.hpp>

#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  net::listener server = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [](net::stream s) {  // a tasklet per connection
                                           for (;;) {
                                             std::string name = s.read_line();  // blocks this tasklet only
                                             sleep(10ms);                       // so does this
                                             s.write("hello, " + name + "\n");
                                           }
                                         });
  net::stream s = net::connect(r, "localhost", server.port());  // main waits; the reactor runs meanwhile
  for (const char* name : {"tasklets", "deferreds"}) {
    s.write(std::string(name) + "\n");
    std::printf("%s\n", block_on(s.async_read_line().add_timeout(1s, r)).c_str());  // a deferred, with a deadline
  }
}
