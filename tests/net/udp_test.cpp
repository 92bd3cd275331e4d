// UDP sockets over loopback: round trips, the deferred forms, cancellation and kills.
#include "net/net_test_support.hpp"

using namespace net_test;

namespace {

net::udp_endpoint udp_loopback(std::uint16_t port = 0) {
  return net::udp_endpoint(asio::ip::address_v4::loopback(), port);
}

/// Echoes datagrams until it receives "stop".
void udp_echo(net::udp_socket s) {
  std::string buf(65536, '\0');
  for (;;) {
    net::udp_endpoint from;
    const std::size_t n = s.receive_from(asio::buffer(buf), from);
    if (std::string_view(buf.data(), n) == "stop") return;
    s.send_to(asio::buffer(buf.data(), n), from);
  }
}

}  // namespace

TEST_CASE("udp: round trips of several sizes", "[net][udp]") {
  run_reactor([](reactor& r) {
    net::udp_socket server(r, udp_loopback(0));
    REQUIRE(server.local_endpoint().port() != 0);
    auto echo = deferred_tasklet(udp_echo)(server);
    net::udp_socket client(r, udp_loopback(0));
    std::string buf(65536, '\0');
    for (std::size_t size : {0u, 1u, 2u, 100u, 1472u, 1473u, 9000u, 65507u}) {
      INFO("size " << size);
      const std::string data = pattern(size, size);
      client.send_to(data, server.local_endpoint());
      net::udp_endpoint from;
      const std::size_t n = client.receive_from(asio::buffer(buf), from);
      CHECK(from == server.local_endpoint());
      CHECK(std::string_view(buf.data(), n) == data);
    }
    client.send_to("stop", server.local_endpoint());
    block_on(echo);
  });
}

TEST_CASE("udp: the deferred forms, and a cancelled receive consumes nothing", "[net][udp]") {
  run_reactor([](reactor& r) {
    net::udp_socket a(r, udp_loopback(0));
    net::udp_socket b(r, udp_loopback(0));
    CHECK_THROWS_AS(block_on(a.async_receive_from().add_timeout(30ms, r)), timeout_error);
    auto pending = a.async_receive_from();
    pending.cancel();
    CHECK_THROWS_AS(block_on(pending), cancelled_error);
    block_on(b.async_send_to("first", a.local_endpoint()));
    net::datagram d = block_on(a.async_receive_from());
    CHECK(d.data == "first");
    CHECK(d.sender == b.local_endpoint());
  });
}

TEST_CASE("udp: killing a blocked receiver consumes no datagram", "[net][udp][kill]") {
  run_reactor([](reactor& r) {
    net::udp_socket a(r, udp_loopback(0));
    net::udp_socket b(r, udp_loopback(0));
    tasklet receiver = tasklet::spawn([&] {
      char buf[64];
      net::udp_endpoint from;
      a.receive_from(asio::buffer(buf), from);
      FAIL("the receiver should have been killed");
    });
    wait_until([&] { return receiver.blocked(); });
    b.send_to("kept", a.local_endpoint());
    wait_until([&] { return a.socket().available() > 0; });
    receiver.kill();
    CHECK_FALSE(receiver.alive());
    char buf[64];
    net::udp_endpoint from;
    CHECK(std::string_view(buf, a.receive_from(asio::buffer(buf), from)) == "kept");
  });
}

TEST_CASE("udp: close() wakes a blocked receiver", "[net][udp]") {
  run_reactor([](reactor& r) {
    net::udp_socket a(r, udp_loopback(0));
    auto d = a.async_receive_from();
    CHECK_FALSE(d.called());
    a.close();
    CHECK_FALSE(a.is_open());
    CHECK_THROWS_AS(block_on(d), net::connection_closed);
    CHECK_THROWS_AS(a.send_to("x", udp_loopback(9)), net::connection_closed);
  });
}

TEST_CASE("udp: IPv6 loopback when available", "[net][udp][ipv6]") {
  if (!ipv6_loopback_available()) {
    WARN("no IPv6 loopback here; skipped");
    return;
  }
  run_reactor([](reactor& r) {
    const net::udp_endpoint any6(asio::ip::address_v6::loopback(), 0);
    net::udp_socket a(r, any6);
    net::udp_socket b(r, any6);
    b.send_to("over ::1", a.local_endpoint());
    char buf[64];
    net::udp_endpoint from;
    CHECK(std::string_view(buf, a.receive_from(asio::buffer(buf), from)) == "over ::1");
    CHECK(from == b.local_endpoint());
  });
}
