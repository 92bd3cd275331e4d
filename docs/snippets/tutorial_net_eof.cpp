// The end of a stream says something too: shutdown_write() means "that is all", and the reader
// sees end_of_stream, yet can still answer.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  reactor r;
  net::listener server = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [](net::stream s) {
                                           int count = 0, sum = 0;
                                           try {
                                             for (;;) sum += std::stoi(s.read_line()), ++count;
                                           } catch (const net::end_of_stream&) {
                                             // the client has finished sending; we can still write
                                           }
                                           s.write(std::to_string(count) + " numbers, sum " + std::to_string(sum) + "\n");
                                         });  // returning drops the stream: the connection closes
  net::stream s = net::connect(r, "127.0.0.1", server.port());
  for (int n : {3, 4, 5}) s.write(std::to_string(n) + "\n");
  s.shutdown_write();  // sends FIN; reading goes on
  std::printf("server says: %s\n", s.read_line().c_str());
  try {
    s.read_line();
  } catch (const net::end_of_stream&) {
    std::printf("end_of_stream: the server closed its side too\n");
  }
}
