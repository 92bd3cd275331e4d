// Request cycles that could never make progress are refused by name.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

TEST_CASE("a tasklet actor that requests itself gets request_cycle_error") {
  hub_fixture f;
  twistlet::deferred<std::string> seen;
  caf::actor a = f.hub->spawn(
      [&](ta::tasklet_actor& self) {
        try {
          block_on(ta::request<int>(self.handle(), get_atom::value));
        } catch (const ta::request_cycle_error& e) {
          seen.callback(e.what());
        }
        self.receive([](get_atom) { return 1; });
      },
      {.name = "narcissus"});
  std::string what = block_on(seen);
  CHECK(what.find("request cycle: tasklet actor 'narcissus'") == 0);
  CHECK(what.find("-> tasklet actor 'narcissus'") != std::string::npos);
  // It still works once it receives.
  CHECK(block_on(ta::request<int>(a, get_atom::value)) == 1);
}

TEST_CASE("a cycle through a service back into a blocked tasklet actor") {
  hub_fixture f;
  caf::actor ledger;
  caf::actor audit = f.hub->spawn_service({.name = "audit"}, [&](int amount) {
    // Asks the ledger, which waits for this very answer.
    return block_on(ta::request<int>(ledger, get_atom::value)) + amount;
  });
  ledger = f.hub->spawn(
      [&](ta::tasklet_actor& self) {
        int balance = 100;
        for (;;) {
          try {
            self.receive([&](get_atom) { return balance; },
                         [&](put_atom, int amount) {
                           balance = block_on(ta::request<int>(audit, amount));
                           return balance;
                         });
          } catch (const ta::request_cycle_error&) {
            // The request was answered with the error; the ledger carries on.
          }
        }
      },
      {.name = "ledger"});
  try {
    block_on(ta::request<int>(ledger, put_atom::value, 5));
    FAIL("expected request_cycle_error");
  } catch (const ta::request_cycle_error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("tasklet actor 'ledger'") != std::string::npos);
    CHECK(what.find("service 'audit' handler 1") != std::string::npos);
    CHECK(what.find("'ledger' (actor " + std::to_string(ledger.id()) + ") -> service 'audit'") != std::string::npos);
  }
  // Nothing is stuck: the ledger answers, and no request is left pending.
  CHECK(block_on(ta::request<int>(ledger, get_atom::value)) == 100);
  CHECK(f.hub->pending_requests() == 0);
}

TEST_CASE("a serial service that calls itself is a cycle, a concurrent one recurses") {
  hub_fixture f;
  caf::actor self_ref;
  SECTION("max_concurrency 1") {
    self_ref = f.hub->spawn_service({.name = "serial", .max_concurrency = 1}, [&](int n) {
      return n == 0 ? 0 : block_on(ta::request<int>(self_ref, n - 1)) + 1;
    });
    CHECK(block_on(ta::request<int>(self_ref, 0)) == 0);
    CHECK_THROWS_WITH(block_on(ta::request<int>(self_ref, 2)),
                      Catch::Contains("every handler the service may run at once (1)"));
  }
  SECTION("no limit: each request gets its own tasklet") {
    self_ref = f.hub->spawn_service({.name = "fib"}, [&](int n) {
      if (n < 2) return n;
      std::vector<twistlet::deferred<int>> ds{ta::request<int>(self_ref, n - 1), ta::request<int>(self_ref, n - 2)};
      auto r = block_on(twistlet::gather_results(ds));
      return r[0] + r[1];
    });
    CHECK(block_on(ta::request<int>(self_ref, 12)) == 144);
  }
  SECTION("max_concurrency 2 with one handler in the chain still has room") {
    self_ref = f.hub->spawn_service({.name = "pair", .max_concurrency = 2}, [&](int n) {
      return n == 0 ? 0 : block_on(ta::request<int>(self_ref, n - 1)) + 1;
    });
    CHECK(block_on(ta::request<int>(self_ref, 1)) == 1);
    CHECK_THROWS_AS(block_on(ta::request<int>(self_ref, 2)), ta::request_cycle_error);
  }
}

TEST_CASE("a request back into an actor that waits in receive() is no cycle") {
  hub_fixture f;
  caf::actor a;
  caf::actor echo = f.hub->spawn_service([&](int x) {
    // Calls back into `a`, which is free to receive: it did not block on this request.
    return block_on(ta::request<int>(a, get_atom::value)) + x;
  });
  twistlet::deferred<int> got;
  a = f.hub->spawn([&](ta::tasklet_actor& self) {
    auto d = ta::request<int>(echo, 1);  // sent, not waited on
    self.receive([](get_atom) { return 41; });
    got.callback(block_on(d));
  });
  CHECK(block_on(got) == 42);
}

TEST_CASE("a cycle across two hubs in one process") {
  capture_unhandled reports;  // the origin ends by the cycle error it does not catch
  system_holder s;
  ta::hub_thread one(*s.sys);
  ta::hub_thread two(*s.sys);
  auto back = std::make_shared<caf::actor>();
  caf::actor svc = two.call([back](ta::hub& h) {
                        return h.spawn_service({.name = "remote-ish"},
                                               [back](int x) { return block_on(ta::request<int>(*back, x)); });
                      }).get();
  *back = one.call([svc](ta::hub& h) {
               return h.spawn(
                   [svc](ta::tasklet_actor& self) {
                     for (;;) self.receive([&](int x) { return block_on(ta::request<int>(svc, x)); });
                   },
                   {.name = "origin"});
             }).get();
  caf::scoped_actor self{*s.sys};
  caf::error err;
  self->request(*back, caf::infinite, 3).receive([](int) {}, [&](caf::error& e) { err = e; });
  REQUIRE(err);
  CHECK(err.category() == ta::error_category);
  CHECK(err.code() == static_cast<std::uint8_t>(ta::error_code::request_cycle));
  CHECK(s.sys->render(err).find("origin") != std::string::npos);
}
