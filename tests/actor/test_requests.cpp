// Requests as deferreds: results, typed responses, failures, cancellation.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

#include <thread>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

namespace {

// Waits (blocking the thread, no reactor needed) until a plain CAF actor has terminated.
void await_down(caf::actor_system& sys, const caf::actor& a) {
  caf::scoped_actor self{sys};
  self->monitor(a);
  self->receive([](const caf::down_msg&) {});
}

}  // namespace

TEST_CASE("a request from main outside reactor::run() is answered by a plain CAF actor") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  CHECK(block_on(ta::request<int>(calc, add_atom::value, 1, 2)) == 3);
  CHECK(block_on(ta::request<int>(calc, 1s, add_atom::value, 40, 2)) == 42);
  CHECK(f.hub->pending_requests() == 0);
}

TEST_CASE("tasklets block on requests while the reactor serves others") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  std::vector<int> results(10);
  int done = 0;
  for (int i = 0; i < 10; ++i) {
    twistlet::tasklet::spawn([&, i] {
      int acc = 0;
      for (int k = 0; k < 5; ++k) acc = block_on(ta::request<int>(calc, add_atom::value, acc, i));
      results[static_cast<std::size_t>(i)] = acc;
      if (++done == 10) f.loop->stop();
    });
  }
  f.loop->run();
  for (int i = 0; i < 10; ++i) CHECK(results[static_cast<std::size_t>(i)] == 5 * i);
}

TEST_CASE("responses convert to the requested type") {
  hub_fixture f;
  // (Spawn arguments keep CAF's function-based spawn clear of the UB noted in the support header.)
  caf::actor a = f.sys().spawn([](caf::event_based_actor*, int) -> caf::behavior {
    return {
        [](get_atom, int x) { return std::make_tuple(x, std::to_string(x)); },
        [](put_atom, int) {},
        [](const std::string& s) { return s + "!"; },
    };
  }, 0);
  SECTION("a tuple") {
    auto [n, s] = block_on(ta::request<std::tuple<int, std::string>>(a, get_atom::value, 7));
    CHECK(n == 7);
    CHECK(s == "7");
  }
  SECTION("void") { block_on(ta::request<void>(a, put_atom::value, 1)); }
  SECTION("a string") { CHECK(block_on(ta::request<std::string>(a, "hi")) == "hi!"); }
  SECTION("a caf::message") {
    caf::message m = block_on(ta::request<caf::message>(a, get_atom::value, 3));
    REQUIRE(m.match_elements<int, std::string>());
    CHECK(m.get_as<int>(0) == 3);
  }
  SECTION("another type than the response fails with unexpected_response_error") {
    auto d = ta::request<std::string>(a, get_atom::value, 3);
    CHECK_THROWS_AS(block_on(d), ta::unexpected_response_error);
    CHECK_THROWS_WITH(block_on(ta::request<double>(a, "x")), Catch::Contains("expected double"));
    CHECK_THROWS_AS(block_on(ta::request<void>(a, "x")), ta::unexpected_response_error);
  }
}

TEST_CASE("a request that no handler takes fails with the receiver's error") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  try {
    block_on(ta::request<int>(calc, "no such handler"));
    FAIL("expected remote_error");
  } catch (const ta::remote_error& e) {
    CHECK(std::string(e.what()).find("unexpected_message") != std::string::npos);
    CHECK(e.error.category() == caf::atom("system"));
  }
}

TEST_CASE("a request times out with timeout_error and leaves nothing behind") {
  hub_fixture f;
  caf::actor hole = f.sys().spawn<black_hole>();
  CHECK_THROWS_AS(block_on(ta::request<int>(hole, 20ms, ping_atom::value)), twistlet::timeout_error);
  CHECK(f.hub->pending_requests() == 0);
  SECTION("the hub's default timeout applies to requests without one") {
    f.hub.reset();
    f.hub.emplace(f.sys(), ta::hub_options{.request_timeout = 10ms});
    CHECK_THROWS_AS(block_on(ta::request<int>(hole, ping_atom::value)), twistlet::timeout_error);
  }
  caf::anon_send_exit(hole, caf::exit_reason::kill);
}

TEST_CASE("a request to a dead receiver fails with receiver_down_error") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  caf::anon_send_exit(calc, caf::exit_reason::kill);
  await_down(f.sys(), calc);
  CHECK_THROWS_AS(block_on(ta::request<int>(calc, add_atom::value, 1, 2)), ta::receiver_down_error);
  CHECK(f.hub->pending_requests() == 0);
}

TEST_CASE("a pending request fails with receiver_down_error when the receiver dies before answering") {
  hub_fixture f;
  caf::actor hole = f.sys().spawn<black_hole>();
  auto d = ta::request<int>(hole, ping_atom::value);
  auto killer = twistlet::tasklet::spawn([&] {
    twistlet::sleep(5ms);
    caf::anon_send_exit(hole, caf::exit_reason::user_shutdown);
  });
  try {
    block_on(d);
    FAIL("expected receiver_down_error");
  } catch (const ta::receiver_down_error& e) {
    CHECK(e.error == caf::exit_reason::user_shutdown);
    CHECK(std::string(e.what()).find("user_shutdown") != std::string::npos);
  }
  CHECK(f.hub->pending_requests() == 0);
}

TEST_CASE("cancelling a request forgets it and drops its late response") {
  hub_fixture f;
  // Answers each ping 10 ms later.
  caf::actor a = f.sys().spawn([](caf::event_based_actor* self, int) -> caf::behavior {
    auto waiting = std::make_shared<std::vector<caf::response_promise>>();
    return {
        [self, waiting](ping_atom) -> caf::response_promise {
          waiting->push_back(self->make_response_promise());
          self->delayed_send(self, 10ms, put_atom::value);
          return waiting->back();
        },
        [waiting](put_atom) {
          for (auto& rp : *waiting) rp.deliver(1);
          waiting->clear();
        },
    };
  }, 0);
  SECTION("cancel()") {
    auto d = ta::request<int>(a, ping_atom::value);
    CHECK(f.hub->pending_requests() == 1);
    d.cancel();
    CHECK(f.hub->pending_requests() == 0);
    CHECK_THROWS_AS(block_on(d), twistlet::cancelled_error);
  }
  SECTION("killing the tasklet blocked on it") {
    twistlet::tasklet t = twistlet::tasklet::spawn([&] { block_on(ta::request<int>(a, ping_atom::value)); });
    twistlet::schedule();
    REQUIRE(t.blocked());
    CHECK(f.hub->pending_requests() == 1);
    t.kill();
    CHECK_FALSE(t.alive());
    CHECK(f.hub->pending_requests() == 0);
  }
  // The late response arrives and finds nothing to fire. (The timeout is only a guard against
  // a hang; a ThreadSanitizer build on a loaded machine needs more than a second here.)
  CHECK(block_on(ta::request<int>(a, 30s, ping_atom::value)) == 1);
  twistlet::sleep(20ms);
  CHECK(f.hub->pending_requests() == 0);
}

TEST_CASE("request() misuse") {
  SECTION("without a hub on the thread") {
    bool threw = false;
    std::thread([&] {
      try {
        ta::request<int>(caf::actor{}, add_atom::value, 1, 2);
      } catch (const std::logic_error&) {
        threw = true;
      }
    }).join();
    CHECK(threw);
  }
  SECTION("to an empty handle") {
    hub_fixture f;
    CHECK_THROWS_AS(ta::request<int>(caf::actor{}, add_atom::value, 1, 2), std::invalid_argument);
    CHECK(f.hub->pending_requests() == 0);
  }
}

TEST_CASE("send() from a plain tasklet is anonymous, from a tasklet actor it names the actor") {
  hub_fixture f;
  twistlet::deferred<std::vector<bool>> seen;
  caf::actor probe = f.hub->spawn([&](ta::tasklet_actor& self) {
    std::vector<bool> named;
    for (int i = 0; i < 2; ++i) self.receive([&](ping_atom) { named.push_back(self.current_sender() != nullptr); });
    seen.callback(named);
  });
  ta::send(probe, ping_atom::value);
  f.hub->spawn([&](ta::tasklet_actor&) { ta::send(probe, ping_atom::value); });
  CHECK(block_on(seen) == std::vector<bool>{false, true});
}

TEST_CASE("errors convert both ways") {
  caf::error cycle = ta::make_error(ta::error_code::request_cycle, "a -> b -> a");
  CHECK(ta::to_failure(cycle).check<ta::request_cycle_error>());
  CHECK(ta::to_failure(caf::make_error(caf::sec::request_timeout)).check<twistlet::timeout_error>());
  CHECK(ta::to_failure(caf::make_error(caf::sec::request_receiver_down)).check<ta::receiver_down_error>());
  CHECK(ta::to_failure(caf::make_error(caf::sec::unexpected_response)).check<ta::unexpected_response_error>());
  twistlet::failure remote = ta::to_failure(ta::make_error(ta::error_code::exception, "boom", "std::runtime_error"));
  REQUIRE(remote.check<ta::remote_error>());
  CHECK(remote.get<ta::remote_error>()->type_name == "std::runtime_error");
  CHECK(remote.what() == "boom");
  // Re-encoding keeps what the exception says and where it came from.
  caf::error again = ta::to_error(remote);
  CHECK(again == remote.get<ta::remote_error>()->error);
  caf::error local = ta::to_error(twistlet::failure::make(std::out_of_range("index 9")));
  CHECK(is_exception_error(local, "index 9"));
  CHECK(ta::to_error(twistlet::failure::make(twistlet::tasklet_killed_error())) == caf::sec::request_receiver_down);
  CHECK_THROWS_AS(ta::to_failure(caf::error{}), std::invalid_argument);
  CHECK(ta::to_string(ta::error_code::broken_promise) == "broken_promise");
  caf::error from_enum = ta::error_code::request_cycle;
  CHECK(from_enum.category() == ta::error_category);
}
