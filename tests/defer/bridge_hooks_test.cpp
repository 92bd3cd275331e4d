// The hooks the bridge layer builds on: has_result, chain_running, consume; thread affinity;
// chains that switch tasklets half-way.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>

using namespace twistlet;

TEST_CASE("has_result is true only when the result could be taken now") {
  deferred<int> d;
  CHECK_FALSE(d.has_result());
  d.pause();
  d.callback(1);
  CHECK_FALSE(d.has_result());
  d.unpause();
  CHECK(d.has_result());

  bool inside = true;
  d.add_callback([&](int v) {
    inside = d.has_result();
    return v;
  });
  CHECK_FALSE(inside);

  deferred<int> inner;
  deferred<int> outer = succeed(0).add_callback([&](int) { return inner; });
  CHECK_FALSE(outer.has_result());
  inner.callback(2);
  CHECK(outer.has_result());
  CHECK_FALSE(inner.has_result());  // handed over
}

TEST_CASE("chain_running is true while the chain runs its stages") {
  deferred<int> d;
  bool during = false;
  d.add_callback([&](int) { during = d.chain_running(); });
  CHECK_FALSE(d.chain_running());
  d.callback(0);
  CHECK(during);
  CHECK_FALSE(d.chain_running());
}

TEST_CASE("consume delivers at once when the result is there") {
  int v = 0;
  deferred<int> d = succeed(4);
  d.consume([&](outcome<int>&& o) { v = o.value(); });
  CHECK(v == 4);
  CHECK_FALSE(d.has_result());
}

TEST_CASE("consume delivers when the chain reaches it") {
  std::vector<std::string> log;
  deferred<int> d;
  d.add_callback([&](int x) {
    log.push_back("stage");
    return x + 1;
  });
  d.add_callback([&](int x) { return x; }).consume([&](outcome<int>&& o) { log.push_back("consumer " + std::to_string(o.value())); });
  CHECK(log.empty());
  d.callback(1);
  CHECK(log == std::vector<std::string>{"stage", "consumer 2"});
}

TEST_CASE("after consume, adding a stage or consuming again is a logic error") {
  deferred<int> d;
  d.consume([](outcome<int>&&) {});
  CHECK_THROWS_WITH(d.add_callback([](int) {}), Catch::Contains("consumed"));
  CHECK_THROWS_WITH(d.consume([](outcome<int>&&) {}), Catch::Contains("consumed"));
  d.callback(1);
}

TEST_CASE("a cancel after consume still reaches the consumer") {
  bool cancelled = false;
  deferred<int> d;
  d.consume([&](outcome<int>&& o) { cancelled = o.error().check<cancelled_error>(); });
  d.cancel();
  CHECK(cancelled);
}

TEST_CASE("consume of a void chain") {
  bool ok = false;
  succeed().consume([&](outcome<void>&& o) { ok = o.has_value(); });
  CHECK(ok);
}

TEST_CASE("a consumer may fire another chain that adds to this one") {
  std::vector<std::string> log;
  deferred<int> a;
  deferred<int> b;
  deferred<int> tail = a.add_callback([&](int v) {
    log.push_back("a1");
    return v;
  });
  b.consume([&](outcome<int>&&) {
    log.push_back("b consumer");
    a.callback(0);
    log.push_back("after a.callback");
  });
  b.callback(0);
  CHECK(log == std::vector<std::string>{"b consumer", "a1", "after a.callback"});
}

TEST_CASE("a stage may switch tasklets half-way through its chain") {
  std::vector<std::string> log;
  deferred<int> a;
  deferred<int> b;
  b.add_callback([&](int v) {
    log.push_back("b1");
    return v;
  });
  a.add_callback([&](int v) {
    log.push_back("a1 before switch");
    // Another tasklet fires a different chain and adds to this running one meanwhile.
    tasklet t([&] {
      log.push_back("other tasklet");
      b.callback(1);
      a.add_callback([&](int x) {
        log.push_back("a-late");
        return x;
      });
    });
    t.run();
    log.push_back("a1 after switch");
    return v;
  });
  a.add_callback([&](int v) {
    log.push_back("a2");
    return v;
  });
  a.callback(0);
  CHECK(log == std::vector<std::string>{"a1 before switch", "other tasklet", "b1", "a1 after switch", "a2", "a-late"});
}

TEST_CASE("a consumer may switch tasklets before the firing call returns") {
  std::vector<std::string> log;
  deferred<int> d;
  tasklet waiter([&] {
    log.push_back("waiter resumed");
    schedule_remove();
  });
  d.consume([&](outcome<int>&&) {
    log.push_back("consumer");
    waiter.run();
    log.push_back("consumer done");
  });
  d.callback(1);
  log.push_back("callback returned");
  CHECK(log == std::vector<std::string>{"consumer", "waiter resumed", "consumer done", "callback returned"});
  waiter.kill();
}

#if defined(TWISTLET_CHECKS)
TEST_CASE("using a deferred from another thread is a logic error") {
  deferred<int> d;
  std::string why;
  std::thread other([&] {
    try {
      d.callback(1);
    } catch (const std::logic_error& e) {
      why = e.what();
    }
  });
  other.join();
  CHECK(why.find("deferred used from a thread other than") != std::string::npos);
  CHECK_FALSE(d.called());
}
#endif

TEST_CASE("chain_running_here tells whether the caller's own stack runs the chain") {
  deferred<int> d;
  bool here = false;
  bool elsewhere = true;
  d.add_callback([&](int v) {
    here = d.chain_running_here();
    tasklet t([&] { elsewhere = d.chain_running_here(); });
    t.run();
    return v;
  });
  CHECK_FALSE(d.chain_running_here());
  d.callback(0);
  CHECK(here);
  CHECK_FALSE(elsewhere);
}
