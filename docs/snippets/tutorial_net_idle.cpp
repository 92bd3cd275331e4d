// An idle timeout closes connections that have gone quiet; every arrival restarts the clock.
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
  net::listener server = net::listen_tcp(
      r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
      [](net::stream s) {
        try {
          for (;;) s.write(s.read_line() + "\n");
        } catch (const net::idle_timeout&) {
          std::printf("server: nothing for 100 ms, connection closed\n");
        }
      },
      {.idle_timeout = 100ms});
  net::stream s = net::connect(r, "127.0.0.1", server.port());
  for (int i = 0; i < 4; ++i) {
    sleep(30ms);  // 120 ms in all, but never 100 ms of silence
    s.write("ping\n");
    s.read_line();
  }
  std::printf("client: 4 pings 30 ms apart, still connected\n");
  try {
    s.read_line();  // now the client goes quiet
  } catch (const net::end_of_stream&) {
    std::printf("client: the server hung up\n");
  }
}
