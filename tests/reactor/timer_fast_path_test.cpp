// The allocation-free timer path: the FIFO of calls due at once beside the heap, recycled
// timer nodes, timer_task, and reactor_time's call_later_task (defer_later and add_timeout on
// a clock that only overrides call_later). Ordering must be exactly what one heap would give.
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <twistlet/bridge.hpp>
#include <twistlet/time.hpp>

#include "../../framework/reactor/timer_queue.hpp"

using namespace twistlet;
using namespace std::chrono_literals;

namespace {
time_point at(duration d) { return time_point{} + d; }

using log_t = std::vector<std::string>;

// A clock that overrides only the public interface, as a user's own clock would.
class forwarding_clock final : public reactor_time {
 public:
  time_point now() const override { return inner.now(); }
  delayed_call call_later(duration delay, std::function<void()> fn) override {
    ++calls;
    return inner.call_later(delay, std::move(fn));
  }
  manual_clock inner;
  int calls = 0;
};

struct counted {
  static inline int alive = 0;
  counted() { ++alive; }
  counted(const counted&) { ++alive; }
  counted(counted&&) noexcept { ++alive; }
  ~counted() { --alive; }
};
}  // namespace

TEST_CASE("calls due at once run in time order and FIFO on ties with the heap's calls") {
  manual_clock clock;
  clock.advance(1s);
  log_t log;
  // Due now (the FIFO), due now through the heap (a delay that is not zero, moved onto now),
  // and due later: the merge must give exactly the single-heap order.
  clock.call_later(0s, [&] { log.push_back("a0"); });
  delayed_call moved = clock.call_later(2s, [&] { log.push_back("moved"); });
  clock.call_later(0s, [&] { log.push_back("b0"); });
  clock.call_later(1s, [&] { log.push_back("c1"); });
  clock.call_later(0s, [&] { log.push_back("d0"); });
  moved.reset(0s);  // onto now, coming from later: after the calls already due now
  clock.advance(0s);
  CHECK(log == log_t{"a0", "b0", "d0", "moved"});
  clock.advance(1s);
  CHECK(log.back() == "c1");
}

TEST_CASE("a call due at once scheduled during advance runs after the calls already due then") {
  manual_clock clock;
  log_t log;
  clock.call_later(1s, [&] {
    log.push_back("first");
    clock.call_later(0s, [&] { log.push_back("zero"); });
  });
  clock.call_later(1s, [&] { log.push_back("second"); });
  clock.advance(1s);
  CHECK(log == log_t{"first", "second", "zero"});
}

TEST_CASE("overdue calls of the heap and the FIFO run merged in time order, FIFO on ties") {
  manual_clock clock;
  log_t log;
  // A pass that starts late, as a busy reactor's does: everything is overdue by then.
  detail::timer_queue q(clock);
  q.schedule(at(1s), [&] { log.push_back("heap 1s"); });
  q.schedule(at(2s), [&] { log.push_back("fifo 2s"); }, true);
  q.schedule(at(2s), [&] { log.push_back("heap 2s"); });
  q.schedule(at(2s), [&] { log.push_back("fifo 2s again"); }, true);
  CHECK(q.earliest() == at(1s));
  CHECK(q.run_pass(at(5s)) == 4);
  CHECK(log == log_t{"heap 1s", "fifo 2s", "heap 2s", "fifo 2s again"});
}

TEST_CASE("calls due at once that a reactor pass creates wait for the next pass") {
  manual_clock clock;
  detail::timer_queue q(clock);
  log_t log;
  q.schedule(at(0s), [&] {
    log.push_back("first");
    q.schedule(at(1s), [&] { log.push_back("new"); }, true);
  }, true);
  q.schedule(at(0s), [&] { log.push_back("second"); }, true);
  q.schedule(at(1s), [&] { log.push_back("heap"); });
  CHECK(q.run_pass(at(1s)) == 3);
  CHECK(log == log_t{"first", "second", "heap"});
  CHECK(q.earliest() == at(1s));
  CHECK(q.run_pass(at(1s)) == 1);
  CHECK(log.back() == "new");
  CHECK_FALSE(q.earliest().has_value());
}

TEST_CASE("a call_later(0) chain in reactor mode runs one step per pass") {
  manual_clock clock;
  detail::timer_queue q(clock);
  int steps = 0;
  std::function<void()> step = [&] {
    ++steps;
    q.schedule(at(0s), step, true);
  };
  q.schedule(at(0s), step, true);
  for (int pass = 1; pass <= 5; ++pass) {
    CHECK(q.run_pass(at(0s)) == 1);
    CHECK(steps == pass);
  }
  CHECK(q.size() == 1);
}

TEST_CASE("cancelled and moved calls due at once are skipped, and pending_calls lists the rest") {
  manual_clock clock;
  log_t log;
  std::vector<delayed_call> calls;
  for (int i = 0; i < 6; ++i) calls.push_back(clock.call_later(0s, [&log, i] { log.push_back(std::to_string(i)); }));
  calls[0].cancel();
  calls[2].delay(1s);
  calls[4].cancel();
  auto pending = clock.pending_calls();
  REQUIRE(pending.size() == 4);
  CHECK(pending[0] == calls[1]);
  CHECK(pending[1] == calls[3]);
  CHECK(pending[2] == calls[5]);
  CHECK(pending[3] == calls[2]);
  clock.advance(0s);
  CHECK(log == log_t{"1", "3", "5"});
  clock.advance(1s);
  CHECK(log == log_t{"1", "3", "5", "2"});
}

TEST_CASE("a call due at once moved away and back runs once") {
  manual_clock clock;
  int runs = 0;
  delayed_call c = clock.call_later(0s, [&] { ++runs; });
  c.delay(1s);
  c.delay(-1s);
  CHECK(clock.pending_calls().size() == 1);
  clock.advance(0s);
  CHECK(runs == 1);
  CHECK(c.called());
  clock.advance(1s);
  CHECK(runs == 1);
}

TEST_CASE("many cancelled calls due at once are swept without losing the live ones") {
  manual_clock clock;
  std::vector<int> ran;
  std::vector<delayed_call> calls;
  for (int i = 0; i < 5000; ++i) calls.push_back(clock.call_later(0s, [&ran, i] { ran.push_back(i); }));
  for (int i = 0; i < 5000; ++i)
    if (i % 5 != 0) calls[i].cancel();
  CHECK(clock.pending_calls().size() == 1000);
  clock.advance(0s);
  REQUIRE(ran.size() == 1000);
  for (std::size_t k = 0; k < ran.size(); ++k) CHECK(ran[k] == static_cast<int>(k) * 5);
}

TEST_CASE("a handle to a call that ran stays valid while its node's memory is recycled") {
  manual_clock clock;
  int runs = 0;
  delayed_call old = clock.call_later(1s, [&] { ++runs; });
  clock.advance(1s);
  REQUIRE(old.called());
  // Far more calls than the queue caches nodes for, each run and dropped.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1500; ++i) clock.call_later(0s, [&] { ++runs; });
    clock.advance(0s);
  }
  CHECK(runs == 1 + 3 * 1500);
  CHECK(old.called());
  CHECK_FALSE(old.active());
  CHECK(old.time() == at(1s));
  CHECK_THROWS_AS(old.cancel(), already_run_error);
  // A recycled node starts afresh: pending, its own time.
  delayed_call fresh = clock.call_later(2s, [&] { ++runs; });
  CHECK(fresh.active());
  CHECK(fresh.time() == at(3s));
  fresh.cancel();
  CHECK(fresh.cancelled());
  CHECK(old.called());
}

TEST_CASE("a cancelled call's function is destroyed at once, and a run call's right after it runs") {
  manual_clock clock;
  counted::alive = 0;
  delayed_call a = clock.call_later(0s, [c = counted()] {});
  delayed_call b = clock.call_later(0s, [c = counted()] {});
  CHECK(counted::alive == 2);
  a.cancel();
  CHECK(counted::alive == 1);
  clock.advance(0s);
  CHECK(counted::alive == 0);
}

TEST_CASE("destroying the clock cancels calls due at once and destroys their functions") {
  counted::alive = 0;
  delayed_call a, b;
  {
    manual_clock clock;
    a = clock.call_later(0s, [c = counted()] {});
    b = clock.call_later(5s, [c = counted()] {});
    CHECK(counted::alive == 2);
  }
  CHECK(counted::alive == 0);
  CHECK(a.cancelled());
  CHECK(b.cancelled());
}

TEST_CASE("timer_task runs, moves and destroys small, large and move-only functions") {
  int calls = 0;
  counted::alive = 0;
  SECTION("a small move-only function") {
    auto owned = std::make_unique<int>(7);
    detail::timer_task t([&calls, p = std::move(owned), c = counted()] { calls += *p; });
    detail::timer_task moved(std::move(t));
    CHECK_FALSE(t);
    REQUIRE(moved);
    moved();
    CHECK(calls == 7);
    moved.reset();
    CHECK_FALSE(moved);
    CHECK(counted::alive == 0);
  }
  SECTION("a function larger than the inline room") {
    struct big {
      char pad[200] = {};
      int* calls;
      counted c;
      void operator()() const { ++*calls; }
    };
    static_assert(sizeof(big) > detail::timer_task::inline_size);
    detail::timer_task t(big{{}, &calls, {}});
    detail::timer_task other;
    other = std::move(t);
    other();
    CHECK(calls == 1);
    CHECK(counted::alive == 1);
    other = detail::timer_task();
    CHECK(counted::alive == 0);
  }
  SECTION("a std::function") {
    std::function<void()> f = [&calls] { calls += 2; };
    detail::timer_task t(std::move(f));
    t();
    CHECK(calls == 2);
  }
}

TEST_CASE("defer_later and add_timeout work on a clock that overrides only call_later") {
  forwarding_clock clock;
  deferred<int> d = defer_later(clock, 1s, [] { return 5; });
  CHECK(clock.calls == 1);
  int value = 0;
  d.add_callback([&](int v) { value = v; });
  clock.inner.advance(1s);
  CHECK(value == 5);

  deferred<void> slow;
  slow.add_timeout(2s, clock);
  CHECK(clock.calls == 2);
  std::string what;
  slow.add_errback([&](const failure& f) { what = f.what(); });
  clock.inner.advance(2s);
  CHECK(what.find("timed out") != std::string::npos);

  deferred<int> cancelled = defer_later(clock, 1s, [] { return 1; });
  cancelled.cancel();
  CHECK(clock.inner.pending_calls().empty());
  cancelled.add_errback([](const failure& f) {
    CHECK(f.check<cancelled_error>());
    return 0;
  });
}

TEST_CASE("a reactor's zero-delay calls run in order, those made in a pass in the next one") {
  reactor r;
  log_t log;
  // Far off, so that no machine is slow enough to make it due: it must just stay pending.
  delayed_call later = r.call_later(1h, [&] { log.push_back("later"); });
  r.call_later(0s, [&] {
    log.push_back("a");
    r.call_later(0s, [&] {
      log.push_back("c");
      r.stop();
    });
  });
  r.call_later(0s, [&] { log.push_back("b"); });
  r.run();
  CHECK(log == log_t{"a", "b", "c"});
  CHECK(later.active());
  later.cancel();
}

TEST_CASE("block_on of zero-delay defer_later hops in reactor::run") {
  reactor r;
  long sum = 0;
  tasklet::spawn([&] {
    for (int i = 0; i < 3000; ++i) sum += block_on(defer_later(r, 0ns, [i] { return i; }));
    r.stop();
  });
  r.run();
  CHECK(sum == 3000L * 2999 / 2);
}
