// Tasklet actors: receive, replies, promises, delegation, monitors, links, exit reasons.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

#include <future>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

namespace {

// A tasklet actor that keeps a number: get, put, add.
void counter(ta::tasklet_actor& self) {
  int value = 0;
  bool running = true;
  while (running) {
    self.receive([&](get_atom) { return value; },
                 [&](put_atom, int x) { value = x; },
                 [&](add_atom, int x) {
                   value += x;
                   return value;
                 },
                 [&](stop_atom) { running = false; });
  }
}

}  // namespace

TEST_CASE("a tasklet actor answers requests from receive()") {
  hub_fixture f;
  caf::actor c = f.hub->spawn(counter, {.name = "counter"});
  block_on(ta::request<void>(c, put_atom::value, 40));
  CHECK(block_on(ta::request<int>(c, add_atom::value, 2)) == 42);
  CHECK(block_on(ta::request<int>(c, get_atom::value)) == 42);
  CHECK(f.hub->live_actors() == 1);
  auto reason = exit_reason_of(*f.hub, c);
  ta::send(c, stop_atom::value);
  CHECK_FALSE(block_on(reason));  // a normal exit
  CHECK(f.hub->live_actors() == 0);
  CHECK_THROWS_AS(block_on(ta::request<int>(c, get_atom::value)), ta::receiver_down_error);
}

TEST_CASE("plain CAF actors request tasklet actors on a hub thread") {
  system_holder s;
  ta::hub_thread ht(*s.sys);
  caf::actor c = ht.call([](ta::hub& h) { return h.spawn(counter); }).get();
  SECTION("a scoped_actor") {
    caf::scoped_actor self{*s.sys};
    int got = 0;
    self->request(c, caf::infinite, add_atom::value, 5).receive([&](int x) { got = x; }, [](caf::error&) {});
    CHECK(got == 5);
  }
  SECTION("an event-based actor") {
    std::promise<int> result;
    s.sys->spawn(
        [&result](caf::event_based_actor* self, caf::actor target) {
          self->request(target, caf::infinite, add_atom::value, 7).then([&result](int x) { result.set_value(x); });
        },
        c);
    CHECK(result.get_future().get() == 7);
  }
  caf::anon_send(c, stop_atom::value);
}

TEST_CASE("receive() is selective: messages no handler takes wait, in order") {
  hub_fixture f;
  twistlet::deferred<std::vector<int>> seen;
  caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
    std::vector<int> order;
    self.receive([&](stop_atom) {});  // skips the ints that arrive first
    CHECK(self.mailbox_size() == 3);
    for (int i = 0; i < 3; ++i) self.receive([&](int x) { order.push_back(x); });
    seen.callback(order);
  });
  for (int i = 1; i <= 3; ++i) ta::send(a, i);
  ta::send(a, stop_atom::value);
  CHECK(block_on(seen) == std::vector<int>{1, 2, 3});
}

TEST_CASE("receive_for() gives up after its timeout") {
  hub_fixture f;
  twistlet::deferred<std::vector<bool>> seen;
  caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
    std::vector<bool> got;
    got.push_back(self.receive_for(10ms, [](int) {}));  // nothing comes
    got.push_back(self.receive_for(0ms, [](int) {}));   // only looks
    got.push_back(self.receive_for(10s, [](int) {}));   // main sends one
    got.push_back(self.receive_for(0ms, [](int) {}));   // and another, already there
    seen.callback(got);
  });
  twistlet::sleep(30ms);
  ta::send(a, 1);
  ta::send(a, 2);
  CHECK(block_on(seen) == std::vector<bool>{false, false, true, true});
}

TEST_CASE("a handler's exception answers the request with the error and leaves receive()") {
  hub_fixture f;
  capture_unhandled reports;
  twistlet::deferred<std::string> caught;
  caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
    try {
      self.receive([](int x) -> int { throw std::out_of_range("no slot " + std::to_string(x)); });
    } catch (const std::out_of_range& e) {
      caught.callback(e.what());
    }
    self.receive([](int) -> int { throw std::runtime_error("second"); });
  });
  auto reason = exit_reason_of(*f.hub, a);
  try {
    block_on(ta::request<int>(a, 9));
    FAIL("expected remote_error");
  } catch (const ta::remote_error& e) {
    CHECK(std::string(e.what()) == "no slot 9");
    CHECK(e.type_name == "std::out_of_range");
  }
  CHECK(block_on(caught) == "no slot 9");
  CHECK_THROWS_WITH(block_on(ta::request<int>(a, 1)), "second");
  // The second exception escaped the actor: it ended with an error carrying the message.
  CHECK(is_exception_error(block_on(reason), "second"));
  REQUIRE(reports.messages.size() == 1);
  CHECK(reports.messages[0] == "second");
}

TEST_CASE("exit reasons: normal, quit(), kill, exit messages, exceptions") {
  hub_fixture f;
  capture_unhandled reports;
  SECTION("the body returns") {
    caf::actor a = f.hub->spawn([](ta::tasklet_actor& self) { self.receive([](stop_atom) {}); });
    auto r = exit_reason_of(*f.hub, a);
    ta::send(a, stop_atom::value);
    CHECK_FALSE(block_on(r));
  }
  SECTION("quit() with a reason") {
    caf::actor a = f.hub->spawn([](ta::tasklet_actor& self) {
      self.receive([&](stop_atom) { self.quit(caf::make_error(caf::exit_reason::user_shutdown)); });
    });
    auto r = exit_reason_of(*f.hub, a);
    ta::send(a, stop_atom::value);
    CHECK(block_on(r) == caf::exit_reason::user_shutdown);
  }
  SECTION("tasklet::kill()") {
    twistlet::tasklet t;
    caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
      t = self.tasklet();
      self.receive([](stop_atom) {});
    });
    auto r = exit_reason_of(*f.hub, a);
    twistlet::sleep(1ms);
    REQUIRE(t.blocked());
    t.kill();
    CHECK(block_on(r) == caf::exit_reason::kill);
  }
  SECTION("a kill before the tasklet ever ran") {
    caf::actor a = f.hub->spawn([](ta::tasklet_actor&) { FAIL("the body must not run"); });
    caf::scoped_actor watcher{f.sys()};
    watcher->monitor(a);
    f.hub.reset();  // kills the actor whose tasklet never started
    caf::error reason;
    watcher->receive([&](const caf::down_msg& m) { reason = m.reason; });
    CHECK(reason == caf::exit_reason::user_shutdown);
  }
  SECTION("an exit message from outside") {
    caf::actor a = f.hub->spawn([](ta::tasklet_actor& self) {
      for (;;) self.receive([](int) {});
    });
    auto r = exit_reason_of(*f.hub, a);
    twistlet::sleep(1ms);
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    CHECK(block_on(r) == caf::exit_reason::user_shutdown);
    CHECK_THROWS_AS(block_on(ta::request<int>(a, 1)), ta::receiver_down_error);
  }
  SECTION("a normal exit message is ignored") {
    caf::actor a = f.hub->spawn([](ta::tasklet_actor& self) { self.receive([](stop_atom) {}); });
    auto r = exit_reason_of(*f.hub, a);
    caf::anon_send_exit(a, caf::exit_reason::normal);
    twistlet::sleep(5ms);
    CHECK_FALSE(r.called());
    ta::send(a, stop_atom::value);
    CHECK_FALSE(block_on(r));
  }
  // Ending by tasklet_exit is never an error report.
  CHECK(reports.messages.empty());
}

TEST_CASE("a tasklet actor monitors a plain CAF actor") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  twistlet::deferred<caf::error> seen;
  f.hub->spawn([&](ta::tasklet_actor& self) {
    self.monitor(calc);
    self.receive([&](const caf::down_msg& m) {
      CHECK(m.source == calc.address());
      seen.callback(m.reason);
    });
  });
  twistlet::sleep(1ms);
  caf::anon_send_exit(calc, caf::exit_reason::kill);
  CHECK(block_on(seen) == caf::exit_reason::kill);
}

TEST_CASE("linked tasklet actors die together unless one traps exits") {
  hub_fixture f;
  capture_unhandled reports;
  caf::actor crasher = f.hub->spawn([](ta::tasklet_actor& self) {
    self.receive([](stop_atom) { throw std::runtime_error("crash"); });
  });
  SECTION("not trapping: the linked actor ends with the same reason") {
    caf::actor buddy = f.hub->spawn([&](ta::tasklet_actor& self) {
      self.link_to(crasher);
      for (;;) self.receive([](int) {});
    });
    auto r = exit_reason_of(*f.hub, buddy);
    twistlet::sleep(1ms);
    ta::send(crasher, stop_atom::value);
    CHECK(is_exception_error(block_on(r), "crash"));
  }
  SECTION("trapping: the exit arrives as a message") {
    twistlet::deferred<caf::error> seen;
    caf::actor buddy = f.hub->spawn([&](ta::tasklet_actor& self) {
      self.trap_exit(true);
      self.link_to(crasher);
      self.receive([&](const caf::exit_msg& m) { seen.callback(m.reason); });
    });
    auto r = exit_reason_of(*f.hub, buddy);
    twistlet::sleep(1ms);
    ta::send(crasher, stop_atom::value);
    CHECK(is_exception_error(block_on(seen), "crash"));
    CHECK_FALSE(block_on(r));
  }
  CHECK(reports.messages == std::vector<std::string>{"crash"});
}

TEST_CASE("replying later with a promise, and delegating") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
    std::vector<ta::response_promise> later;
    for (;;) {
      self.receive(
          [&](get_atom) { later.push_back(self.make_response_promise()); },
          [&](put_atom, int x) {
            for (auto& p : later) p.deliver(x);
            later.clear();
          },
          [&](add_atom, int a, int b) { self.delegate(calc, add_atom::value, a, b); },
          [&](ping_atom) {
            auto p = self.make_response_promise();  // dropped unanswered
            CHECK(p.pending());
          },
          [&](stop_atom) {
            CHECK_THROWS_AS(self.make_response_promise(), std::logic_error);  // not a request
          });
    }
  });
  auto d1 = ta::request<int>(a, get_atom::value);
  auto d2 = ta::request<int>(a, get_atom::value);
  twistlet::sleep(2ms);
  CHECK_FALSE(d1.called());
  ta::send(a, put_atom::value, 5);
  CHECK(block_on(d1) == 5);
  CHECK(block_on(d2) == 5);
  CHECK(block_on(ta::request<int>(a, add_atom::value, 20, 22)) == 42);
  CHECK_THROWS_WITH(block_on(ta::request<int>(a, ping_atom::value)), Catch::Contains("without answering"));
  ta::send(a, stop_atom::value);
  CHECK(block_on(ta::request<int>(a, add_atom::value, 1, 1)) == 2);
  caf::anon_send_exit(a, caf::exit_reason::kill);
}

TEST_CASE("tasklet_actor misuse is refused") {
  hub_fixture f;
  ta::tasklet_actor* self_ptr = nullptr;
  caf::actor a = f.hub->spawn([&](ta::tasklet_actor& self) {
    self_ptr = &self;
    CHECK_THROWS_AS(self.make_response_promise(), std::logic_error);  // outside a handler
    self.receive([](stop_atom) {});
  });
  twistlet::sleep(1ms);
  REQUIRE(self_ptr);
  CHECK_THROWS_AS(self_ptr->receive([](int) {}), std::logic_error);  // from main, not its tasklet
  CHECK_THROWS_AS(self_ptr->quit(), std::logic_error);
  ta::send(a, stop_atom::value);
  bool refused = false;
  std::thread([&] {
    try {
      f.hub->spawn([](ta::tasklet_actor&) {});
    } catch (const std::logic_error&) {
      refused = true;
    }
  }).join();
  CHECK(refused);
}

TEST_CASE("many tasklet actors pass a token around a ring") {
  hub_fixture f;
  constexpr int n = 200;
  std::vector<caf::actor> ring(n);
  twistlet::deferred<int> done;
  // Each forwards the token to the next; the first stops after three laps.
  for (int i = n - 1; i >= 0; --i) {
    caf::actor next = i + 1 < n ? ring[static_cast<std::size_t>(i + 1)] : caf::actor{};
    ring[static_cast<std::size_t>(i)] = f.hub->spawn([&, i, next](ta::tasklet_actor& self) {
      for (;;) {
        self.receive([&](int hops) {
          if (i == 0 && hops == 3 * n) {
            done.callback(hops);
            return;
          }
          ta::send(next ? next : ring[0], hops + 1);
        });
      }
    });
  }
  ta::send(ring[0], 0);
  CHECK(block_on(done) == 3 * n);
  CHECK(f.hub->live_actors() == n);
}
