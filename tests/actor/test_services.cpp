// Services: each request in a tasklet of its own; handlers that block.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

#include <future>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

TEST_CASE("a service answers requests with its handlers' return values") {
  hub_fixture f;
  caf::actor svc = f.hub->spawn_service(
      {.name = "calc"}, [](add_atom, int a, int b) { return a + b; },
      [](get_atom, const std::string& key) { return std::make_tuple(key, static_cast<int>(key.size())); },
      [](put_atom, int) {},
      [](ping_atom) { return twistlet::succeed(std::string("pong")); });
  CHECK(block_on(ta::request<int>(svc, add_atom::value, 2, 3)) == 5);
  CHECK(block_on(ta::request<std::tuple<std::string, int>>(svc, get_atom::value, "four")) ==
        std::make_tuple(std::string("four"), 4));
  block_on(ta::request<void>(svc, put_atom::value, 1));
  CHECK(block_on(ta::request<std::string>(svc, ping_atom::value)) == "pong");
  SECTION("a request no handler takes") {
    CHECK_THROWS_WITH(block_on(ta::request<int>(svc, 1.5)), Catch::Contains("unexpected_message"));
  }
  SECTION("an exception in a handler becomes remote_error with its message") {
    caf::actor bad = f.hub->spawn_service([](int x) -> int { throw std::invalid_argument("bad " + std::to_string(x)); });
    try {
      block_on(ta::request<int>(bad, 7));
      FAIL("expected remote_error");
    } catch (const ta::remote_error& e) {
      CHECK(std::string(e.what()) == "bad 7");
      CHECK(e.type_name == "std::invalid_argument");
    }
  }
}

TEST_CASE("service handlers block and run side by side") {
  hub_fixture f;
  int running = 0;
  int most = 0;
  caf::actor slow = f.hub->spawn_service([&](int x) {
    most = std::max(most, ++running);
    twistlet::sleep(5ms);
    --running;
    return x * 2;
  });
  std::vector<twistlet::deferred<int>> ds;
  for (int i = 0; i < 8; ++i) ds.push_back(ta::request<int>(slow, i));
  auto all = block_on(twistlet::gather_results(ds));
  for (int i = 0; i < 8; ++i) CHECK(all[static_cast<std::size_t>(i)] == 2 * i);
  CHECK(most == 8);
  SECTION("max_concurrency bounds them, the rest wait their turn") {
    most = 0;
    caf::actor bounded = f.hub->spawn_service({.name = "bounded", .max_concurrency = 2}, [&](int x) {
      most = std::max(most, ++running);
      twistlet::sleep(2ms);
      --running;
      return x + 1;
    });
    ds.clear();
    for (int i = 0; i < 7; ++i) ds.push_back(ta::request<int>(bounded, i));
    auto r = block_on(twistlet::gather_results(ds));
    for (int i = 0; i < 7; ++i) CHECK(r[static_cast<std::size_t>(i)] == i + 1);
    CHECK(most == 2);
  }
}

TEST_CASE("services whose handlers block on other services and actors") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  caf::actor square = f.hub->spawn_service({.name = "square"}, [&](int x) {
    twistlet::sleep(1ms);
    return x * x;
  });
  // sum of squares, each square from the other service, summed by the plain CAF actor
  caf::actor sumsq = f.hub->spawn_service({.name = "sumsq"}, [&](int a, int b) {
    std::vector<twistlet::deferred<int>> parts{ta::request<int>(square, a), ta::request<int>(square, b)};
    auto sq = block_on(twistlet::gather_results(parts));
    return block_on(ta::request<int>(calc, 1s, add_atom::value, sq[0], sq[1]));
  });
  CHECK(block_on(ta::request<int>(sumsq, 3, 4)) == 25);
  SECTION("a failure deep down reaches the first requester with its message") {
    caf::actor broken = f.hub->spawn_service([](int) -> int { throw std::runtime_error("disk full"); });
    caf::actor front = f.hub->spawn_service([&](int x) { return block_on(ta::request<int>(broken, x)); });
    try {
      block_on(ta::request<int>(front, 1));
      FAIL("expected remote_error");
    } catch (const ta::remote_error& e) {
      CHECK(std::string(e.what()) == "disk full");
      CHECK(e.type_name == "std::runtime_error");
    }
  }
}

TEST_CASE("a plain CAF actor requests a service on a hub thread") {
  system_holder s;
  ta::hub_thread ht(*s.sys);
  caf::actor svc = ht.call([](ta::hub& h) {
                       return h.spawn_service([](add_atom, int a, int b) {
                         twistlet::sleep(1ms);
                         return a + b;
                       });
                     }).get();
  caf::scoped_actor self{*s.sys};
  int got = 0;
  self->request(svc, caf::infinite, add_atom::value, 20, 22).receive([&](int x) { got = x; }, [](caf::error&) {});
  CHECK(got == 42);
  caf::error err;
  self->request(svc, caf::infinite, "no handler").receive([](int) {}, [&](caf::error& e) { err = e; });
  CHECK(err == caf::sec::unexpected_message);
}

TEST_CASE("an exit message stops a service: running handlers are killed, their requesters see it") {
  hub_fixture f;
  bool unwound = false;
  caf::actor svc = f.hub->spawn_service([&](ping_atom) {
    struct mark {
      bool& b;
      ~mark() { b = true; }
    } m{unwound};
    twistlet::sleep(1h);
    return 0;
  });
  auto pending = ta::request<int>(svc, ping_atom::value);
  auto reason = exit_reason_of(*f.hub, svc);
  twistlet::sleep(2ms);
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
  CHECK(block_on(reason) == caf::exit_reason::user_shutdown);
  CHECK_THROWS_AS(block_on(pending), ta::receiver_down_error);
  CHECK(unwound);
  CHECK_THROWS_AS(block_on(ta::request<int>(svc, ping_atom::value)), ta::receiver_down_error);
  CHECK(f.hub->live_actors() == 0);
}

TEST_CASE("an asynchronous message's exception in a service is reported, not sent") {
  hub_fixture f;
  capture_unhandled reports;
  twistlet::deferred<void> done;
  caf::actor svc = f.hub->spawn_service([&](int) {
    done.callback();
    throw std::runtime_error("nobody asked");
  });
  ta::send(svc, 1);
  block_on(done);
  twistlet::sleep(1ms);
  CHECK(reports.messages == std::vector<std::string>{"nobody asked"});
}
