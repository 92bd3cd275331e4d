// Timeouts and kills cancel a read, and only that read: the connection stays up and no byte is
// lost.
#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  channel<std::string> to_send;  // what the server writes, when the client says so
  net::listener l = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                    [&](net::stream s) {
                                      for (std::string text : to_send) s.write(text);
                                    });
  tasklet::spawn([&] {
    net::stream s = net::connect(r, "127.0.0.1", l.port());
    // [timeout]
    try {
      block_on(s.async_read_line().add_timeout(20ms, r));
    } catch (const timeout_error&) {
      std::printf("no line within 20 ms; the stream is still open: %d\n", s.is_open());
    }
    // [timeout]
    // [kill]
    to_send.send("abc");
    while (s.socket().available() < 3) sleep(1ms);  // "abc" has arrived
    tasklet reader = tasklet::spawn([&] {
      char six[6];
      s.read_exactly(asio::buffer(six));  // takes "abc", then waits for three more bytes
    });
    while (!reader.blocked() || s.socket().available() != 0) sleep(1ms);
    reader.kill();  // cancels that read; what it had taken goes back to the stream
    to_send.send("def\n");
    std::printf("next line: %s\n", s.read_line().c_str());
    // [kill]
    to_send.stop();
    r.stop();
  });
  r.run();
}
