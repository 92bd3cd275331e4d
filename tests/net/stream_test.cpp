// TCP streams in blocking style over loopback: round trips, partial transfers, half-close,
// resets, line limits, idle timeouts, many connections, connection errors.
#include "net/net_test_support.hpp"

#include <algorithm>
#include <set>

using namespace net_test;

namespace {

std::vector<std::size_t> echo_sizes() {
  std::set<std::size_t> sizes;
  for (std::size_t i = 0; i <= 16; ++i) sizes.insert(i);
  for (int k = 5; k <= 20; ++k) {
    const std::size_t p = std::size_t(1) << k;
    sizes.insert(p - 1);
    sizes.insert(p);
    if (k < 20) sizes.insert(p + 1);
  }
  return {sizes.begin(), sizes.end()};
}

/// Sends `data` from a tasklet of its own (so both directions flow at once), half-closes, and
/// reads the echo back.
std::string echo_through(net::stream c, const std::string& data) {
  auto writer = deferred_tasklet([c, &data]() mutable {
    c.write(data);
    c.shutdown_write();
  })();
  std::string got(data.size(), '\0');
  c.read_exactly(asio::buffer(got));
  block_on(writer);
  char extra;
  REQUIRE_THROWS_AS(c.read_some(asio::buffer(&extra, 1)), net::end_of_stream);
  return got;
}

}  // namespace

TEST_CASE("echo round trips of every size up to 1 MiB", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    REQUIRE(l.port() != 0);
    for (std::size_t size : echo_sizes()) {
      INFO("size " << size);
      net::stream c = net::connect(r, loopback(l.port()));
      const std::string data = pattern(size, size);
      REQUIRE(echo_through(c, data) == data);
      c.close();
    }
    wait_until([&] { return l.connection_count() == 0; }, "echo handlers to end");
  });
}

TEST_CASE("streams report their endpoints", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::stream server_side;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) {
      server_side = s;
      echo_handler(s);
    });
    net::stream c = net::connect(r, loopback(l.port()));
    wait_until([&] { return bool(server_side); });
    CHECK(c.remote_endpoint() == l.local_endpoint());
    CHECK(server_side.remote_endpoint() == c.local_endpoint());
    CHECK(server_side.local_endpoint() == l.local_endpoint());
    CHECK(&c.get_reactor() == &r);
    c.close();
    CHECK_FALSE(c.is_open());
    CHECK(c.remote_endpoint() == l.local_endpoint());  // kept after close
    server_side = net::stream();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("partial reads return what has arrived, and read_exactly assembles pieces", "[net][stream]") {
  run_reactor([](reactor& r) {
    channel<int> go;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) {
      for (const char* piece : {"ab", "cde", "f", "ghij"}) {
        s.write(std::string_view(piece));
        go.receive();  // one piece at a time, paced by the client
      }
    });
    net::stream c = net::connect(r, loopback(l.port()));
    char buf[64];
    std::size_t n = c.read_some(asio::buffer(buf));
    CHECK(std::string(buf, n) == "ab");
    go.send(1);
    char three[3];
    c.read_exactly(asio::buffer(three));
    CHECK(std::string(three, 3) == "cde");
    go.send(1);
    // A read smaller than what arrived leaves the rest for the next read.
    go.send(1);
    wait_until([&] { return c.socket().available() >= 5; });
    n = c.read_some(asio::buffer(buf, 2));
    CHECK(std::string(buf, n) == "fg");
    n = c.read_some(asio::buffer(buf));
    CHECK(std::string(buf, n) == "hij");
    go.send(1);
    CHECK_THROWS_AS(c.read_some(asio::buffer(buf)), net::end_of_stream);
    CHECK(c.read_some(asio::mutable_buffer()) == 0);  // an empty buffer returns at once
    c.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("a write larger than the socket buffers blocks until the peer reads, and arrives whole", "[net][stream]") {
  run_reactor([](reactor& r) {
    const std::string data = pattern(8 << 20);
    std::string received;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) {
      char buf[1000];  // small reads: the writer must wait many times
      for (;;) {
        try {
          const std::size_t n = s.read_some(asio::buffer(buf));
          received.append(buf, n);
        } catch (const net::end_of_stream&) {
          return;
        }
      }
    });
    net::stream c = net::connect(r, loopback(l.port()));
    c.socket().set_option(asio::socket_base::send_buffer_size(65536));
    c.write(data);
    c.shutdown_write();
    wait_until([&] { return l.connection_count() == 0; });
    CHECK(received.size() == data.size());
    CHECK(received == data);
  });
}

TEST_CASE("half-close: the peer reads to the end and can still answer", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), [](net::stream s) {
      std::string all;
      char buf[256];
      try {
        for (;;) all.append(buf, s.read_some(asio::buffer(buf)));
      } catch (const net::end_of_stream&) {
      }
      s.write("got " + std::to_string(all.size()) + ": " + all + "\n");
    });
    net::stream c = net::connect(r, loopback(l.port()));
    c.write("hello ");
    c.write("world");
    c.shutdown_write();
    c.shutdown_write();  // again: a no-op
    CHECK_THROWS_AS(c.write("more"), net::error);
    try {
      c.write("more");
    } catch (const net::error& e) {
      CHECK(e.code() == asio::error::shut_down);
    }
    CHECK(c.read_line() == "got 11: hello world");
    CHECK_THROWS_AS(c.read_line(), net::end_of_stream);
    CHECK_THROWS_AS(c.read_line(), net::end_of_stream);  // sticky
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("read_line: terminators, limits and what stays buffered", "[net][stream]") {
  run_reactor([](reactor& r) {
    channel<std::string> to_send;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) {
      for (std::string chunk : to_send) s.write(chunk);
    });
    net::stream c = net::connect(r, loopback(l.port()));
    to_send.send("one\r\ntwo\nthr");
    CHECK(c.read_line() == "one");
    CHECK(c.read_line() == "two");
    to_send.send("ee\n\n");
    CHECK(c.read_line() == "three");
    CHECK(c.read_line() == "");
    // Exactly at the limit is fine, with either terminator.
    to_send.send(std::string(10, 'x') + "\r\n" + std::string(10, 'y') + "\n");
    CHECK(c.read_line(10) == std::string(10, 'x'));
    CHECK(c.read_line(10) == std::string(10, 'y'));
    // Over the limit: line_too_long, and the bytes stay buffered.
    to_send.send(std::string(11, 'z') + "\n");
    CHECK_THROWS_AS(c.read_line(10), net::line_too_long);
    CHECK(c.buffered() == 12);
    CHECK(c.read_line(20) == std::string(11, 'z'));
    // Too long before any terminator arrives: detected without waiting for one.
    to_send.send(std::string(30, 'w'));
    CHECK_THROWS_AS(c.read_line(10), net::line_too_long);
    try {
      c.read_line(10);
    } catch (const net::line_too_long& e) {
      CHECK(e.code() == asio::error::message_size);
    }
    char drain[30];
    c.read_exactly(asio::buffer(drain));
    // An unterminated last line stays readable after end_of_stream.
    to_send.send("tail");
    to_send.stop();
    CHECK_THROWS_AS(c.read_line(), net::end_of_stream);
    CHECK(c.buffered() == 4);
    char tail[8];
    CHECK(std::string(tail, c.read_some(asio::buffer(tail))) == "tail");
    CHECK_THROWS_AS(c.read_some(asio::buffer(tail)), net::end_of_stream);
    c.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("a line over the limit fails that connection only, and the server keeps serving", "[net][stream]") {
  error_capture errors;
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), [](net::stream s) {
      for (;;) s.write(s.read_line(100) + "\n");
    });
    net::stream good = net::connect(r, loopback(l.port()));
    net::stream bad = net::connect(r, loopback(l.port()));
    good.write("before\n");
    CHECK(good.read_line() == "before");
    bad.write(std::string(200, 'x'));
    char buf[16];
    try {
      bad.read_some(asio::buffer(buf));
      FAIL("the server should have closed the connection");
    } catch (const net::end_of_stream&) {
    } catch (const net::connection_reset&) {
    }
    good.write("after\n");
    CHECK(good.read_line() == "after");
    good.close();
    bad.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
  REQUIRE(errors.failures.size() == 1);
  CHECK(errors.count<net::line_too_long>() == 1);
}

TEST_CASE("a peer that resets mid-line gives connection_reset, and others are served", "[net][stream]") {
  error_capture errors;
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), [](net::stream s) {
      for (;;) s.write(s.read_line() + "\n");
    });
    net::stream other = net::connect(r, loopback(l.port()));
    net::stream c = net::connect(r, loopback(l.port()));
    c.write("a complete line\n");
    CHECK(c.read_line() == "a complete line");
    c.write("half a li");
    c.socket().set_option(asio::socket_base::linger(true, 0));
    c.close();  // RST
    wait_until([&] { return l.connection_count() == 1; }, "the reset connection to end");
    other.write("still here\n");
    CHECK(other.read_line() == "still here");
    other.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
  REQUIRE(errors.failures.size() == 1);
  CHECK(errors.count<net::connection_reset>() == 1);
  CHECK(errors.failures[0].what().find("Connection reset") != std::string::npos);
}

TEST_CASE("writing to a reset peer gives connection_reset", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::stream server_side;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) { server_side = s; });
    net::stream c = net::connect(r, loopback(l.port()));
    wait_until([&] { return bool(server_side); });
    server_side.socket().set_option(asio::socket_base::linger(true, 0));
    server_side.close();
    server_side = net::stream();
    char buf[8];
    CHECK_THROWS_AS(c.read_some(asio::buffer(buf)), net::connection_reset);
    const std::string big(1 << 20, 'x');
    CHECK_THROWS_AS(c.write(big), net::connection_reset);
    CHECK_THROWS_AS(c.write(big), net::connection_reset);  // sticky
  });
}

TEST_CASE("the idle timeout closes a connection that sends nothing", "[net][stream]") {
  error_capture errors;
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.idle_timeout = 50ms;
    bool timed_out = false;
    net::listener l = net::listen_tcp(
        r, loopback(0),
        [&](net::stream s) {
          try {
            for (;;) s.write(s.read_line() + "\n");
          } catch (const net::idle_timeout&) {
            timed_out = true;
            throw;  // silent: an ordinary end of a connection
          }
        },
        opts);
    net::stream silent = net::connect(r, loopback(l.port()));
    char buf[8];
    CHECK_THROWS_AS(silent.read_some(asio::buffer(buf)), net::end_of_stream);
    CHECK(timed_out);
    wait_until([&] { return l.connection_count() == 0; });
  });
  CHECK(errors.failures.empty());
}

TEST_CASE("the idle timeout spares a connection that keeps talking", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::listen_options opts;
    opts.idle_timeout = 500ms;
    net::listener l = net::listen_tcp(
        r, loopback(0), [](net::stream s) { for (;;) s.write(s.read_line() + "\n"); }, opts);
    net::stream c = net::connect(r, loopback(l.port()));
    for (int i = 0; i < 10; ++i) {
      c.write("ping\n");
      CHECK(c.read_line() == "ping");
      sleep(20ms);
    }
    c.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("a stream's own idle timeout wakes its blocked reader with idle_timeout", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    net::stream c = net::connect(r, loopback(l.port()));
    c.set_idle_timeout(30ms);
    CHECK(c.idle_timeout() == 30ms);
    char buf[8];
    try {
      c.read_some(asio::buffer(buf));
      FAIL("expected idle_timeout");
    } catch (const net::idle_timeout& e) {
      CHECK(e.code() == asio::error::timed_out);
    }
    CHECK_FALSE(c.is_open());
    CHECK_THROWS_AS(c.read_some(asio::buffer(buf)), net::idle_timeout);
    CHECK_THROWS_AS(c.write("x"), net::idle_timeout);
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("1,000 concurrent connections each echo", "[net][stream][load]") {
  constexpr int connections = 1000;
  if (ensure_open_files(2 * connections + 100) < 2 * connections + 100) {
    WARN("not enough file descriptors for 1,000 connections; skipped");
    return;
  }
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.backlog = 2 * connections;
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler, opts);
    std::vector<deferred<std::string>> clients;
    clients.reserve(connections);
    auto client = deferred_tasklet([&r, port = l.port()](int i) {
      net::stream c = net::connect(r, loopback(port));
      const std::string msg = "client " + std::to_string(i) + " " + pattern(100, i);
      c.write(msg);
      std::string back(msg.size(), '\0');
      c.read_exactly(asio::buffer(back));
      return back == msg ? std::string("ok") : "mismatch " + std::to_string(i);
    });
    for (int i = 0; i < connections; ++i) clients.push_back(client(i));
    auto results = block_on(gather_results(std::move(clients)));
    CHECK(std::count(results.begin(), results.end(), "ok") == connections);
    wait_until([&] { return l.connection_count() == 0; }, "all echo handlers to end");
  });
}

TEST_CASE("connecting where nobody listens gives connection_refused", "[net][stream]") {
  run_reactor([](reactor& r) {
    std::uint16_t port = 0;
    {
      net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
      port = l.port();
    }  // closed: the port now refuses
    CHECK_THROWS_AS(net::connect(r, loopback(port)), net::connection_refused);
    try {
      net::connect(r, "127.0.0.1", port);
    } catch (const net::connection_refused& e) {
      CHECK(e.code() == asio::error::connection_refused);
      CHECK(std::string(e.what()).find("refused") != std::string::npos);
    }
    auto d = net::connect_tcp(r, loopback(port));
    CHECK_THROWS_AS(block_on(d), net::connection_refused);
  });
}

TEST_CASE("localhost resolves to loopback addresses and connects", "[net][stream]") {
  run_reactor([](reactor& r) {
    const std::vector<net::tcp_endpoint> eps = block_on(net::resolve_tcp(r, "localhost", 4242));
    REQUIRE_FALSE(eps.empty());
    for (const auto& ep : eps) {
      CHECK(ep.address().is_loopback());
      CHECK(ep.port() == 4242);
    }
    const auto numeric = block_on(net::resolve_tcp(r, "127.0.0.1", 7));
    REQUIRE(numeric.size() == 1);
    CHECK(numeric[0] == loopback(7));
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    net::stream c = net::connect(r, "localhost", l.port());
    CHECK(c.remote_endpoint() == l.local_endpoint());
    c.write("hi\n");
    CHECK(c.read_line() == "hi");
    c.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("IPv6 loopback works when available", "[net][stream][ipv6]") {
  if (!ipv6_loopback_available()) {
    WARN("no IPv6 loopback here; skipped");
    return;
  }
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback6(0), echo_handler);
    net::stream c = net::connect(r, "::1", l.port());
    CHECK(c.remote_endpoint().address().is_v6());
    const std::string data = pattern(100000);
    CHECK(echo_through(c, data) == data);
    c.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("a connected Asio socket can be wrapped in a stream", "[net][stream]") {
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    asio::ip::tcp::socket raw(r.context());
    raw.connect(loopback(l.port()));
    net::stream s(r, std::move(raw));
    s.write("wrapped\n");
    CHECK(s.read_line() == "wrapped");
    s.close();
    asio::ip::tcp::socket unconnected(r.context());
    unconnected.open(asio::ip::tcp::v4());
    CHECK_THROWS_AS(net::stream(r, std::move(unconnected)), net::error);
    wait_until([&] { return l.connection_count() == 0; });
  });
}
