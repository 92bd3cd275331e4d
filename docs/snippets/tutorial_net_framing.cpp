// TCP carries bytes, not messages: read_line() and read_exactly() find the messages again.
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
  // [server]
  net::listener server = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [](net::stream s) {
                                           for (;;) {
                                             std::string header = s.read_line();  // "BLOB <size>"
                                             std::string body(std::stoul(header.substr(5)), '\0');
                                             s.read_exactly(asio::buffer(body));  // exactly <size> bytes
                                             s.write("got " + std::to_string(body.size()) + " bytes: " + body + "\n");
                                           }
                                         });
  // [server]
  // [client]
  net::stream s = net::connect(r, "127.0.0.1", server.port());
  for (const char* piece : {"BLO", "B 5\nhel", "loBLOB 11\nhello", " world"}) {
    s.write(piece);  // the pieces do not line up with the messages
    sleep(1ms);      // and they arrive one by one
  }
  std::printf("%s\n", s.read_line().c_str());
  std::printf("%s\n", s.read_line().c_str());
  s.close();  // the server's read_line() throws end_of_stream: its tasklet ends quietly
  // [client]
}
