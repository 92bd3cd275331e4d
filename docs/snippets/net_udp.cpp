// UDP in blocking style: receive_from() and send_to() inside tasklets.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  reactor r;
  const net::udp_endpoint loopback(asio::ip::address_v4::loopback(), 0);
  // [udp]
  net::udp_socket server(r, loopback);  // port 0: the system picks one
  tasklet::spawn([server]() mutable {
    char buf[1500];
    net::udp_endpoint from;
    try {
      for (;;) {
        const std::size_t n = server.receive_from(asio::buffer(buf), from);
        server.send_to(asio::buffer(buf, n), from);  // echo it back
      }
    } catch (const net::connection_closed&) {
      // close() below: the end of the service
    }
  });
  tasklet::spawn([&] {
    net::udp_socket client(r, loopback);
    client.send_to("ping", server.local_endpoint());
    net::datagram reply = block_on(client.async_receive_from());
    std::printf("%s from the server: %d\n", reply.data.c_str(), reply.sender == server.local_endpoint());
    server.close();  // the echo tasklet's receive_from() throws connection_closed
    r.stop();
  });
  r.run();
  // [udp]
}
