// Twisted-style protocols and line_receiver over loopback, against blocking-style peers.
#include "net/net_test_support.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

using namespace net_test;

namespace {

struct echo_protocol : net::protocol {
  void data_received(std::string_view data) override { transport().write(data); }
};

/// Records the reason it got in connection_lost, and whether that happened inside another
/// callback.
struct recording {
  std::vector<failure> reasons;
  int lost = 0;
  bool lost_inside_callback = false;
};

struct shouting_lines : net::line_receiver {
  explicit shouting_lines(std::shared_ptr<recording> rec, std::size_t max = 100) : line_receiver(max), rec_(std::move(rec)) {}
  void line_received(std::string_view line) override {
    inside_ = true;
    std::string up(line);
    std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (up == "QUIT") {
      send_line("BYE");
      transport().lose_connection();
    } else if (up == "BOOM") {
      throw std::runtime_error("boom");
    } else {
      send_line(up);
    }
    inside_ = false;
  }
  void line_length_exceeded(std::string_view partial) override {
    ++exceeded;
    exceeded_size = partial.size();
    line_receiver::line_length_exceeded(partial);
  }
  void connection_lost(const failure& reason) override {
    rec_->lost_inside_callback |= inside_;
    rec_->reasons.push_back(reason);
    ++rec_->lost;
  }
  int exceeded = 0;
  std::size_t exceeded_size = 0;

 private:
  std::shared_ptr<recording> rec_;
  bool inside_ = false;
};

}  // namespace

TEST_CASE("protocol: echo round trips of every size up to 1 MiB", "[net][protocol]") {
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<echo_protocol>());
    for (std::size_t size : {0u, 1u, 2u, 3u, 100u, 4095u, 4096u, 4097u, 65535u, 65536u, 65537u, 1048575u, 1048576u}) {
      INFO("size " << size);
      net::stream c = net::connect(r, loopback(l.port()));
      const std::string data = pattern(size, 7);
      auto writer = deferred_tasklet([c, &data]() mutable {
        c.write(data);
        c.shutdown_write();
      })();
      std::string got(size, '\0');
      c.read_exactly(asio::buffer(got));
      block_on(writer);
      CHECK(got == data);
      char extra;
      CHECK_THROWS_AS(c.read_some(asio::buffer(&extra, 1)), net::end_of_stream);
    }
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("protocol: a client protocol via connect_tcp and a factory", "[net][protocol]") {
  struct greeter : net::protocol {
    deferred<std::string> done;
    std::string got;
    void connection_made() override { transport().write("hello\n"); }
    void data_received(std::string_view data) override {
      got.append(data);
      if (got.find('\n') != std::string::npos) transport().lose_connection();
    }
    void connection_lost(const failure& reason) override {
      CHECK(reason.check<net::connection_closed>());
      done.callback(got);
    }
  };
  run_reactor([](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), echo_handler);
    auto p = block_on(net::connect_tcp(r, "127.0.0.1", l.port(), net::make_factory<greeter>()));
    auto g = std::dynamic_pointer_cast<greeter>(p);
    REQUIRE(g);
    CHECK(g->transport().remote_endpoint() == l.local_endpoint());
    CHECK(block_on(g->done) == "hello\n");
    CHECK_FALSE(g->transport().connected());
    g->transport().write("ignored after the connection is lost");
    CHECK(g->transport().pending_bytes() == 0);
    // connect_protocol hands back the very protocol object.
    auto mine = std::make_shared<greeter>();
    auto same = block_on(net::connect_protocol(r, "localhost", l.port(), mine));
    CHECK(same == mine);
    CHECK(block_on(mine->done) == "hello\n");
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("line_receiver: lines, limits, and a server that keeps serving", "[net][protocol]") {
  error_capture errors;
  auto rec = std::make_shared<recording>();
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<shouting_lines>(rec));
    net::stream good = net::connect(r, loopback(l.port()));
    net::stream bad = net::connect(r, loopback(l.port()));
    good.write("hello\r\nworld\n");
    CHECK(good.read_line() == "HELLO");
    CHECK(good.read_line() == "WORLD");
    // Byte by byte: lines are assembled across reads.
    for (char ch : std::string("piecewise\n")) good.write(std::string_view(&ch, 1));
    CHECK(good.read_line() == "PIECEWISE");
    bad.write(std::string(150, 'x'));  // over the limit of 100, no line end
    char buf[16];
    try {
      bad.read_some(asio::buffer(buf));
      FAIL("the connection should have been lost");
    } catch (const net::end_of_stream&) {
    } catch (const net::connection_reset&) {
    }
    good.write("still served\n");
    CHECK(good.read_line() == "STILL SERVED");
    good.write("quit\n");
    CHECK(good.read_line() == "BYE");
    CHECK_THROWS_AS(good.read_line(), net::end_of_stream);
    wait_until([&] { return l.connection_count() == 0; });
  });
  CHECK(errors.failures.empty());
  REQUIRE(rec->lost == 2);
  CHECK_FALSE(rec->lost_inside_callback);
  for (const auto& reason : rec->reasons) CHECK(reason.check<net::connection_closed>());
}

TEST_CASE("line_receiver: a complete line over the limit", "[net][protocol]") {
  struct collector : net::line_receiver {
    collector() : line_receiver(10) {}
    std::vector<std::string> lines;
    std::string exceeded;
    void line_received(std::string_view line) override { lines.emplace_back(line); }
    void line_length_exceeded(std::string_view partial) override { exceeded = partial; }
  };
  collector c;  // no transport: the splitting alone
  c.data_received("short\n0123456789\r\n0123456789x\nnext\n");
  CHECK(c.lines == std::vector<std::string>{"short", "0123456789"});
  CHECK(c.exceeded == "0123456789x\nnext\n");
  c.data_received("fine\n");
  CHECK(c.lines.back() == "fine");
  c.data_received("0123456789\r");  // may still become a line of 10
  CHECK(c.exceeded == "0123456789x\nnext\n");
  c.data_received("\n");
  CHECK(c.lines.back() == "0123456789");
}

TEST_CASE("protocol: the idle timeout loses a silent connection", "[net][protocol]") {
  auto rec = std::make_shared<recording>();
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.idle_timeout = 50ms;
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<shouting_lines>(rec), opts);
    net::stream c = net::connect(r, loopback(l.port()));
    char buf[8];
    CHECK_THROWS_AS(c.read_some(asio::buffer(buf)), net::end_of_stream);
    wait_until([&] { return l.connection_count() == 0; });
  });
  REQUIRE(rec->lost == 1);
  CHECK(rec->reasons[0].check<net::idle_timeout>());
}

TEST_CASE("protocol: a peer reset mid-line gives connection_reset", "[net][protocol]") {
  auto rec = std::make_shared<recording>();
  error_capture errors;
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<shouting_lines>(rec));
    net::stream c = net::connect(r, loopback(l.port()));
    c.write("whole\n");
    CHECK(c.read_line() == "WHOLE");
    c.write("half a li");
    c.socket().set_option(asio::socket_base::linger(true, 0));
    c.close();
    wait_until([&] { return rec->lost == 1; });
  });
  CHECK(errors.failures.empty());  // a reset is a reason, not an unhandled error
  CHECK(rec->reasons[0].check<net::connection_reset>());
}

TEST_CASE("protocol: an exception in a callback is reported and loses that connection only", "[net][protocol]") {
  auto rec = std::make_shared<recording>();
  error_capture errors;
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<shouting_lines>(rec));
    net::stream a = net::connect(r, loopback(l.port()));
    net::stream b = net::connect(r, loopback(l.port()));
    a.write("boom\n");
    char buf[8];
    CHECK_THROWS_AS(a.read_some(asio::buffer(buf)), net::end_of_stream);
    b.write("fine\n");
    CHECK(b.read_line() == "FINE");
    b.close();
    wait_until([&] { return l.connection_count() == 0; });
  });
  REQUIRE(errors.failures.size() == 1);
  CHECK(errors.failures[0].what() == "boom");
  REQUIRE(rec->lost == 2);
  const bool boom_reason = rec->reasons[0].what() == "boom" || rec->reasons[1].what() == "boom";
  CHECK(boom_reason);
}

TEST_CASE("protocol: the peer's end of stream flushes what is queued, then loses", "[net][protocol]") {
  auto rec = std::make_shared<recording>();
  run_reactor([&](reactor& r) {
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<shouting_lines>(rec));
    net::stream c = net::connect(r, loopback(l.port()));
    std::string many;
    for (int i = 0; i < 20000; ++i) many += "line " + std::to_string(i) + "\n";
    c.socket().set_option(asio::socket_base::receive_buffer_size(65536));
    c.write(many);
    c.shutdown_write();
    for (int i = 0; i < 20000; ++i) REQUIRE(c.read_line() == "LINE " + std::to_string(i));
    CHECK_THROWS_AS(c.read_line(), net::end_of_stream);
    wait_until([&] { return rec->lost == 1; });
  });
  CHECK(rec->reasons[0].check<net::end_of_stream>());
}

TEST_CASE("protocol: connection errors and refusals", "[net][protocol]") {
  error_capture errors;
  run_reactor([&](reactor& r) {
    std::uint16_t port;
    {
      net::listener gone = net::listen_tcp(r, loopback(0), echo_handler);
      port = gone.port();
    }
    CHECK_THROWS_AS(block_on(net::connect_protocol(r, "127.0.0.1", port, std::make_shared<echo_protocol>())),
                    net::connection_refused);

    // A factory may refuse a connection.
    struct refusing : net::protocol_factory {
      std::shared_ptr<net::protocol> build_protocol(const net::tcp_endpoint&) override { return nullptr; }
    };
    net::listener l = net::listen_tcp(r, loopback(0), std::make_shared<refusing>());
    net::stream c = net::connect(r, loopback(l.port()));
    char buf[8];
    CHECK_THROWS_AS(c.read_some(asio::buffer(buf)), net::end_of_stream);

    // connection_made() throwing fails the connect_tcp deferred (and is not reported).
    struct failing : net::protocol {
      void connection_made() override { throw std::runtime_error("no thanks"); }
    };
    net::listener echo = net::listen_tcp(r, loopback(0), echo_handler);
    try {
      block_on(net::connect_protocol(r, "127.0.0.1", echo.port(), std::make_shared<failing>()));
      FAIL("expected the failure of connection_made");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "no thanks");
    }
    wait_until([&] { return echo.connection_count() == 0; });
  });
  CHECK(errors.failures.empty());
}

TEST_CASE("protocol: 1,000 concurrent connections each echo", "[net][protocol][load]") {
  constexpr int connections = 1000;
  if (ensure_open_files(2 * connections + 100) < 2 * connections + 100) {
    WARN("not enough file descriptors for 1,000 connections; skipped");
    return;
  }
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.backlog = 2 * connections;
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<echo_protocol>(), opts);
    auto client = deferred_tasklet([&r, port = l.port()](int i) {
      net::stream c = net::connect(r, loopback(port));
      const std::string msg = "client " + std::to_string(i) + " " + pattern(100, i);
      c.write(msg);
      std::string back(msg.size(), '\0');
      c.read_exactly(asio::buffer(back));
      return back == msg ? 1 : 0;
    });
    std::vector<deferred<int>> clients;
    for (int i = 0; i < connections; ++i) clients.push_back(client(i));
    auto results = block_on(gather_results(std::move(clients)));
    CHECK(std::count(results.begin(), results.end(), 1) == connections);
    wait_until([&] { return l.connection_count() == 0; });
  });
}

TEST_CASE("protocol: abort_connection drops queued data at once", "[net][protocol]") {
  struct flooder : net::protocol {
    std::size_t pending_before_abort = 0;
    deferred<void> lost;
    void connection_made() override {
      transport().write(pattern(16 << 20));
      pending_before_abort = transport().pending_bytes();
      transport().abort_connection();
      CHECK_FALSE(transport().connected());
    }
    void connection_lost(const failure& reason) override {
      CHECK(reason.check<net::connection_closed>());
      lost.callback();
    }
  };
  run_reactor([](reactor& r) {
    net::stream server_side;
    net::listener l = net::listen_tcp(r, loopback(0), [&](net::stream s) { server_side = s; });
    auto f = std::make_shared<flooder>();
    block_on(net::connect_protocol(r, "127.0.0.1", l.port(), f));
    block_on(f->lost);
    CHECK(f->pending_before_abort > 0);
    server_side = net::stream();
  });
}

TEST_CASE("protocol: a connection attempt can time out", "[net][protocol][cancel]") {
  run_reactor([](reactor& r) {
    // As in the stream test: a full accept queue makes the kernel drop further SYNs.
    asio::ip::tcp::acceptor stuck(r.context(), loopback(0));
    stuck.listen(0);
    const auto port = stuck.local_endpoint().port();
    std::vector<std::shared_ptr<echo_protocol>> queued;
    bool timed_out = false;
    for (int i = 0; i < 20 && !timed_out; ++i) {
      auto p = std::make_shared<echo_protocol>();
      try {
        block_on(net::connect_protocol(r, "127.0.0.1", port, p).add_timeout(50ms, r));
        queued.push_back(p);
      } catch (const timeout_error&) {
        timed_out = true;
      }
    }
    CHECK(timed_out);
    for (auto& p : queued) p->transport().abort_connection();
  });
}
