// What a failing network operation throws: one net::error subclass per kind of failure.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <cstdio>

using namespace twistlet;

int main() {
  reactor r;
  const net::tcp_endpoint anywhere(asio::ip::address_v4::loopback(), 0);
  tasklet::spawn([&] {
    // [refused]
    std::uint16_t closed_port;
    {
      net::listener gone = net::listen_tcp(r, anywhere, [](net::stream) {});
      closed_port = gone.port();
    }  // destroyed: nobody listens there any more
    try {
      net::connect(r, "127.0.0.1", closed_port);
    } catch (const net::connection_refused& e) {
      std::printf("connection_refused, code %s\n", e.code() == asio::error::connection_refused ? "ECONNREFUSED" : "?");
    }
    // [refused]
    // [lines]
    net::listener l = net::listen_tcp(r, anywhere, [](net::stream s) { s.write("a short line\nand a long one\n"); });
    net::stream s = net::connect(r, "127.0.0.1", l.port());
    std::printf("line: %s\n", s.read_line(12).c_str());
    try {
      s.read_line(12);
    } catch (const net::line_too_long& e) {
      std::printf("line_too_long: %s; the bytes stay buffered\n", e.what());
      std::printf("line: %s\n", s.read_line().c_str());  // a larger limit reads it
    }
    try {
      s.read_line();
    } catch (const net::end_of_stream&) {
      std::printf("end_of_stream: the server closed its side\n");
    }
    // [lines]
    r.stop();
  });
  r.run();
}
