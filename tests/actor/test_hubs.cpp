// Hubs on several threads, hub_thread, hub destruction.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

TEST_CASE("two hubs on two threads exchange requests") {
  system_holder s;
  ta::hub_thread one(*s.sys);
  ta::hub_thread two(*s.sys);
  std::atomic<int> threads_seen{0};
  const auto main_id = std::this_thread::get_id();
  // "inc" on hub two; "twice" on hub one asks "inc" twice; a tasklet actor on hub two asks
  // "twice" and keeps a total.
  caf::actor inc = two.call([&](ta::hub& h) {
                         return h.spawn_service([&](int x) {
                           if (std::this_thread::get_id() != main_id) ++threads_seen;
                           return x + 1;
                         });
                       }).get();
  caf::actor twice = one.call([&](ta::hub& h) {
                          return h.spawn_service([&](int x) {
                            int y = block_on(ta::request<int>(inc, x));
                            return block_on(ta::request<int>(inc, y));
                          });
                        }).get();
  caf::actor totaller = two.call([&](ta::hub& h) {
                             return h.spawn([&](ta::tasklet_actor& self) {
                               int total = 0;
                               for (;;)
                                 self.receive([&](add_atom, int x) {
                                   total += block_on(ta::request<int>(twice, x));
                                   return total;
                                 });
                             });
                           }).get();
  {
    twistlet::reactor r;
    ta::hub h(*s.sys);
    std::vector<twistlet::deferred<int>> ds;
    for (int i = 0; i < 20; ++i) ds.push_back(ta::request<int>(twice, i));
    auto rs = block_on(twistlet::gather_results(ds));
    for (int i = 0; i < 20; ++i) CHECK(rs[static_cast<std::size_t>(i)] == i + 2);
    int last = 0;
    for (int i = 0; i < 5; ++i) last = block_on(ta::request<int>(totaller, add_atom::value, i));
    CHECK(last == (0 + 1 + 2 + 3 + 4) + 5 * 2);
  }
  CHECK(threads_seen.load() == 50);
}

TEST_CASE("tasklet actors on two hubs ping-pong") {
  system_holder s;
  ta::hub_thread one(*s.sys);
  ta::hub_thread two(*s.sys);
  auto pong = two.call([](ta::hub& h) {
                   return h.spawn([](ta::tasklet_actor& self) {
                     for (;;) self.receive([](int x) { return x + 1; });
                   });
                 }).get();
  auto result = one.call([pong](ta::hub&) {
    int x = 0;
    for (int i = 0; i < 1000; ++i) x = block_on(ta::request<int>(pong, x));
    return x;
  });
  CHECK(result.get() == 1000);
}

TEST_CASE("hub_thread::call passes results and exceptions back") {
  system_holder s;
  ta::hub_thread ht(*s.sys);
  CHECK(ht.call([](ta::hub& h) { return &h == ta::hub::current(); }).get());
  CHECK(ht.call([](ta::hub&) {
             twistlet::sleep(1ms);  // it may block
             return 7;
           }).get() == 7);
  auto failing = ht.call([](ta::hub&) -> int { throw std::runtime_error("nope"); });
  CHECK_THROWS_WITH(failing.get(), "nope");
  ht.stop();
  auto late = ht.call([](ta::hub&) { return 1; });
  CHECK_THROWS_AS(late.get(), std::future_error);
}

TEST_CASE("destroying a hub ends its actors and fails its pending requests") {
  system_holder s;
  caf::actor hole = s.sys->spawn<black_hole>();
  auto ht = std::make_unique<ta::hub_thread>(*s.sys);
  caf::actor a = ht->call([](ta::hub& h) {
                    return h.spawn([](ta::tasklet_actor& self) {
                      for (;;) self.receive([](int) {});
                    });
                  }).get();
  caf::actor svc = ht->call([](ta::hub& h) { return h.spawn_service([](int x) { return x; }); }).get();
  std::promise<std::string> outcome;
  ht->post([&, hole](ta::hub&) {
    try {
      block_on(ta::request<int>(hole, ping_atom::value));
      outcome.set_value("answered");
    } catch (const twistlet::tasklet_exit&) {
      outcome.set_value("killed");
      throw;
    } catch (const std::exception& e) {
      outcome.set_value(e.what());
    }
  });
  std::promise<std::string> plain;
  ht->post([&, hole](ta::hub&) {
    // A plain tasklet: the hub is not its owner, so it sees the request fail.
    twistlet::deferred<int> d = ta::request<int>(hole, ping_atom::value);
    twistlet::tasklet::spawn([&plain, d]() mutable {
      try {
        block_on(d);
      } catch (const twistlet::cancelled_error& e) {
        plain.set_value(e.what());
      } catch (const twistlet::tasklet_exit&) {
        plain.set_value("killed");
        throw;
      }
    });
  });
  caf::scoped_actor self{*s.sys};
  self->monitor(a);
  self->monitor(svc);
  ht.reset();
  for (int i = 0; i < 2; ++i)
    self->receive([&](const caf::down_msg& m) { CHECK(m.reason == caf::exit_reason::user_shutdown); });
  auto o = outcome.get_future().get();
  CHECK((o == "killed" || o.find("destroyed") != std::string::npos));
  auto p = plain.get_future().get();
  CHECK((p == "killed" || p.find("destroyed") != std::string::npos));
  // Requests to the dead actors fail at once.
  int failures = 0;
  self->request(a, caf::infinite, 1).receive([](int) {}, [&](caf::error& e) {
    failures += e == caf::sec::request_receiver_down;
  });
  CHECK(failures == 1);
  caf::anon_send_exit(hole, caf::exit_reason::kill);
}

TEST_CASE("hub construction misuse") {
  system_holder s;
  SECTION("no reactor on the thread") { CHECK_THROWS_AS(ta::hub(*s.sys), std::logic_error); }
  SECTION("a second hub on the thread") {
    twistlet::reactor r;
    ta::hub h(*s.sys);
    CHECK(ta::hub::current() == &h);
    CHECK(&h.loop() == &r);
    CHECK(&h.system() == s.sys.get());
    CHECK_THROWS_AS(ta::hub(*s.sys), std::logic_error);
  }
  CHECK(ta::hub::current() == nullptr);
}
