// Cancellation of stream operations: timeouts and cancel() of the deferred forms, kills of
// blocked tasklets, close() from another tasklet, and the guarantee that no data is lost.
#include "net/net_test_support.hpp"

#include <optional>

using namespace net_test;

namespace {

/// A listener whose single connection is handed to the test (the handler only parks it).
struct peer_pair {
  net::listener l;
  net::stream server;
  net::stream client;
};

/// Small kernel buffers, so that a write of a few MiB is sure to block until the peer reads.
peer_pair connect_pair(reactor& r) {
  peer_pair p;
  net::stream* server = &p.server;
  p.l = net::listen_tcp(r, loopback(0), [server](net::stream s) { *server = s; });
  p.client = net::connect(r, loopback(p.l.port()));
  wait_until([&] { return bool(p.server); }, "the server side");
  for (net::stream* s : {&p.client, &p.server}) {
    s->socket().set_option(asio::socket_base::send_buffer_size(65536));
    s->socket().set_option(asio::socket_base::receive_buffer_size(65536));
  }
  return p;
}

}  // namespace

TEST_CASE("add_timeout on a pending read cancels it and the stream stays usable", "[net][cancel]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    auto d = p.client.async_read_line().add_timeout(50ms, r);
    CHECK_THROWS_AS(block_on(d), timeout_error);
    CHECK(p.client.is_open());
    p.server.write("after the timeout\n");
    CHECK(p.client.read_line() == "after the timeout");
    // The same for read_some and read_exactly.
    CHECK_THROWS_AS(block_on(p.client.async_read_some().add_timeout(20ms, r)), timeout_error);
    CHECK_THROWS_AS(block_on(p.client.async_read_exactly(4).add_timeout(20ms, r)), timeout_error);
    p.server.write("abcd");
    CHECK(block_on(p.client.async_read_exactly(4)) == "abcd");
  });
}

TEST_CASE("cancel() of a pending read, and data that comes later is read by the next reader", "[net][cancel]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    auto d = p.client.async_read_some(16);
    CHECK_FALSE(d.called());
    d.cancel();
    CHECK_THROWS_AS(block_on(d), cancelled_error);
    p.server.write("xyz");
    CHECK(block_on(p.client.async_read_some(16)) == "xyz");
  });
}

TEST_CASE("a read_exactly cancelled half-way gives its bytes back", "[net][cancel]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    p.server.write("abc");
    auto d = p.client.async_read_exactly(6).add_timeout(50ms, r);
    CHECK_THROWS_AS(block_on(d), timeout_error);
    CHECK(p.client.buffered() == 3);
    p.server.write("def");
    char six[6];
    p.client.read_exactly(asio::buffer(six));
    CHECK(std::string(six, 6) == "abcdef");
  });
}

TEST_CASE("killing a tasklet blocked in a read cancels only that read", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    bool reader_exited = false;
    tasklet reader = tasklet::spawn([&] {
      try {
        char buf[16];
        p.client.read_some(asio::buffer(buf));
      } catch (const tasklet_exit&) {
        reader_exited = true;
        throw;
      }
    });
    wait_until([&] { return reader.blocked(); });
    reader.kill();
    CHECK(reader_exited);
    CHECK_FALSE(reader.alive());
    CHECK(p.client.is_open());
    p.server.write("abc");
    char buf[16];
    CHECK(std::string(buf, p.client.read_some(asio::buffer(buf))) == "abc");
    // And the connection works both ways.
    p.client.write("back");
    CHECK(std::string(buf, p.server.read_some(asio::buffer(buf))) == "back");
  });
}

TEST_CASE("a killed reader whose buffer the kernel already filled loses nothing", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    char buf[64];
    // A short read makes the next read go straight to Asio, whose speculative attempt then
    // takes data that is already waiting, and queues the completion.
    p.server.write("x");
    CHECK(std::string(buf, p.client.read_some(asio::buffer(buf))) == "x");
    p.server.write("def");
    wait_until([&] { return p.client.socket().available() == 3; });
    tasklet reader([&] {
      char own[64];
      p.client.read_some(asio::buffer(own));
      FAIL("the reader should have been killed");
    });
    reader.run();  // it reads, blocks for the completion, and we resume before the reactor
    REQUIRE(reader.blocked());
    CHECK(p.client.socket().available() == 0);  // the bytes are in the reader's buffer
    reader.kill();
    CHECK_FALSE(reader.alive());
    CHECK(std::string(buf, p.client.read_some(asio::buffer(buf))) == "def");
    p.server.write("ghi");
    CHECK(std::string(buf, p.client.read_some(asio::buffer(buf))) == "ghi");
  });
}

TEST_CASE("a killed read_exactly gives back both what it had and what was on its way", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    p.server.write("abc");
    tasklet reader = tasklet::spawn([&] {
      char eight[8];
      p.client.read_exactly(asio::buffer(eight));
      FAIL("the reader should have been killed");
    });
    wait_until([&] { return reader.blocked() && p.client.socket().available() == 0; });
    p.server.write("de");
    wait_until([&] { return p.client.socket().available() == 2; });
    reader.kill();
    p.server.write("fgh");
    char eight[8];
    p.client.read_exactly(asio::buffer(eight));
    CHECK(std::string(eight, 8) == "abcdefgh");
  });
}

TEST_CASE("kills at random moments during a stream of data lose and reorder nothing", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    constexpr std::size_t total = 400000;
    const std::string data = pattern(total);
    auto writer = deferred_tasklet([&] {
      for (std::size_t off = 0; off < total; off += 1000) {
        p.server.write(std::string_view(data).substr(off, 1000));
        if (off % 7000 == 0) schedule();
      }
      p.server.shutdown_write();
    })();
    std::string received;
    bool ended = false;
    unsigned seed = 12345;
    int kills = 0;
    while (!ended) {
      tasklet reader = tasklet::spawn([&] {
        char buf[3000];
        try {
          for (;;) received.append(buf, p.client.read_some(asio::buffer(buf)));
        } catch (const net::end_of_stream&) {
          ended = true;
        }
      });
      seed = seed * 1103515245 + 12345;
      const unsigned yields = (seed >> 16) % 8;
      for (unsigned i = 0; i < yields && reader.alive(); ++i) schedule();
      if (reader.alive()) {
        reader.kill();
        ++kills;
      } else {
        wait_until([&] { return ended; });
      }
    }
    block_on(writer);
    CHECK(kills > 10);
    CHECK(received.size() == total);
    CHECK(received == data);
  });
}

TEST_CASE("killing a reader leaves a concurrent writer alone", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    const std::string big = pattern(8 << 20);
    auto writer = deferred_tasklet([&] { p.client.write(big); })();
    tasklet reader = tasklet::spawn([&] {
      char buf[16];
      p.client.read_some(asio::buffer(buf));
    });
    wait_until([&] { return reader.blocked(); });
    CHECK_FALSE(writer.called());  // 8 MiB do not fit in the socket buffers
    reader.kill();
    std::string got(big.size(), '\0');
    p.server.read_exactly(asio::buffer(got));
    block_on(writer);
    CHECK(got == big);
  });
}

TEST_CASE("a killed write that sent part of its data stops further writes, not reads", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    const std::string big = pattern(8 << 20);
    tasklet writer = tasklet::spawn([&] { p.client.write(big); });
    wait_until([&] { return writer.blocked(); });
    writer.kill();
    CHECK_FALSE(writer.alive());
    try {
      p.client.write("more");
      FAIL("a write after a cut-short write must fail");
    } catch (const net::error& e) {
      CHECK(e.code() == asio::error::operation_aborted);
    }
    p.server.write("reads still work\n");
    CHECK(p.client.read_line() == "reads still work");
  });
}

TEST_CASE("close() from another tasklet wakes blocked readers and writers", "[net][cancel]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    auto read = p.client.async_read_line();
    auto write = p.client.async_write(pattern(8 << 20));
    CHECK_FALSE(read.called());
    CHECK_FALSE(write.called());
    p.client.close();
    CHECK_THROWS_AS(block_on(read), net::connection_closed);
    CHECK_THROWS_AS(block_on(write), net::connection_closed);
    char buf[4];
    CHECK_THROWS_AS(p.client.read_some(asio::buffer(buf)), net::connection_closed);
    CHECK_THROWS_AS(p.client.write("x"), net::connection_closed);
    CHECK_THROWS_AS(p.client.socket(), net::connection_closed);
    p.client.close();  // idempotent
  });
}

TEST_CASE("concurrent readers are served whole calls in arrival order", "[net][cancel]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    auto first = p.client.async_read_line();
    auto second = p.client.async_read_exactly(5);
    auto third = p.client.async_read_line();
    p.server.write("one\nfive!");
    p.server.write("three\n");
    CHECK(block_on(first) == "one");
    CHECK(block_on(second) == "five!");
    CHECK(block_on(third) == "three");
  });
}

TEST_CASE("a reader killed while queued behind another leaves the queue only", "[net][cancel][kill]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    auto first = p.client.async_read_line();
    std::string second_got;
    tasklet second = tasklet::spawn([&] { second_got = p.client.read_line(); });
    auto third = p.client.async_read_line();
    wait_until([&] { return second.blocked(); });
    second.kill();
    p.server.write("1\n3\n");
    CHECK(block_on(first) == "1");
    CHECK(block_on(third) == "3");
    CHECK(second_got.empty());
  });
}

TEST_CASE("a connection attempt can time out and be cancelled", "[net][cancel]") {
  run_reactor([](reactor& r) {
    // A listener that never accepts, with the shortest queue: once the queue is full the
    // kernel drops further SYNs, so the next attempt hangs until its timeout.
    asio::ip::tcp::acceptor stuck(r.context(), loopback(0));
    stuck.listen(0);
    const auto ep = stuck.local_endpoint();
    std::vector<net::stream> queued;
    bool timed_out = false;
    for (int i = 0; i < 20 && !timed_out; ++i) {
      try {
        queued.push_back(block_on(net::connect_tcp(r, ep).add_timeout(50ms, r)));
      } catch (const timeout_error&) {
        timed_out = true;
      }
    }
    CHECK(timed_out);
    auto d = net::connect_tcp(r, ep);
    d.cancel();
    CHECK_THROWS_AS(block_on(d), cancelled_error);
  });
}

TEST_CASE("blocking calls are refused in the reactor tasklet", "[net][stream]") {
  run_reactor([](reactor& r) {
    peer_pair p = connect_pair(r);
    bool refused = false;
    r.call_later(0ms, [&] {
      try {
        char buf[4];
        p.client.read_some(asio::buffer(buf));
      } catch (const reactor_blocked_error&) {
        refused = true;
      }
    });
    wait_until([&] { return refused; });
    // The deferred forms are for exactly this place.
    std::optional<deferred<std::string>> line;
    r.call_later(0ms, [&] { line = p.client.async_read_line(); });
    wait_until([&] { return line.has_value(); });
    p.server.write("from the reactor\n");
    CHECK(block_on(*line) == "from the reactor");
  });
}

TEST_CASE("the main tasklet can use streams without reactor::run()", "[net][stream]") {
  reactor r;
  net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
  net::stream c = net::connect(r, loopback(l.port()));
  c.write("driven from main\n");
  CHECK(c.read_line() == "driven from main");
  char four[4];
  c.write("abcd");
  c.read_exactly(asio::buffer(four));
  CHECK(std::string(four, 4) == "abcd");
  c.shutdown_write();
  CHECK_THROWS_AS(c.read_line(), net::end_of_stream);
  c.close();
  while (l.connection_count() != 0) sleep(1ms);
}

TEST_CASE("empty handles refuse operations", "[net][stream]") {
  net::stream s;
  char buf[4];
  CHECK_FALSE(s);
  CHECK_FALSE(s.is_open());
  CHECK(s.buffered() == 0);
  CHECK_THROWS_AS(s.read_some(asio::buffer(buf)), std::logic_error);
  CHECK_THROWS_AS(s.write("x"), std::logic_error);
  CHECK_THROWS_AS(s.local_endpoint(), std::logic_error);
  s.close();
  net::listener l;
  CHECK_FALSE(l.is_open());
  CHECK_THROWS_AS(l.local_endpoint(), std::logic_error);
  l.close();
  net::udp_socket u;
  CHECK_THROWS_AS(u.local_endpoint(), std::logic_error);
}

TEST_CASE("a stream outliving its reactor is closed, not dangling", "[net][stream]") {
  net::stream survivor;
  {
    reactor r;
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    survivor = net::connect(r, loopback(l.port()));
    survivor.write("x");
  }
  CHECK_FALSE(survivor.is_open());
  CHECK_THROWS_AS(survivor.write("y"), net::connection_closed);
  char buf[4];
  CHECK_THROWS_AS(survivor.read_some(asio::buffer(buf)), net::connection_closed);
  CHECK_THROWS_AS(survivor.read_line(), net::connection_closed);
  CHECK_THROWS_AS(survivor.socket(), net::connection_closed);
  survivor.set_idle_timeout(std::chrono::seconds(1));
  survivor.close();
}

TEST_CASE("a UDP socket outliving its reactor is closed, not dangling", "[net][udp]") {
  net::udp_socket survivor;
  {
    reactor r;
    survivor = net::udp_socket(r, net::udp_endpoint(asio::ip::address_v4::loopback(), 0));
  }
  CHECK_FALSE(survivor.is_open());
  char buf[4];
  net::udp_endpoint from;
  CHECK_THROWS_AS(survivor.receive_from(asio::buffer(buf), from), net::connection_closed);
  CHECK_THROWS_AS(survivor.send_to("x", survivor.local_endpoint()), net::connection_closed);
}
