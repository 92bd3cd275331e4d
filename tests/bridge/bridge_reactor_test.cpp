// The bridge with a real reactor (SEMANTICS §5.2-5.4, DESIGN decisions 3, 4, 6): nothing
// blocks in the reactor tasklet, sleep, block_on in main outside run() drives the reactor,
// the order of a waiter woken by a timer, and tasklets left asleep when their reactor goes.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;
using namespace std::chrono_literals;

TEST_CASE("block_on in the reactor tasklet throws reactor_blocked_error and leaves the deferred untouched") {
  reactor r;
  deferred<int> pending;
  deferred<int> fired = succeed(3);
  bool refused_pending = false;
  bool refused_fired = false;
  r.call_later(0ms, [&] {
    try {
      block_on(pending);
    } catch (const reactor_blocked_error&) {
      refused_pending = true;
    }
    try {
      block_on(fired);
    } catch (const reactor_blocked_error&) {
      refused_fired = true;
    }
    r.stop();
  });
  r.run();
  CHECK(refused_pending);
  CHECK(refused_fired);
  // Neither was consumed: stages can still be added and see the results.
  CHECK(fired.has_result());
  int v = 0;
  pending.add_callback([&](int x) { v = x; });
  pending.callback(4);
  CHECK(v == 4);
}

TEST_CASE("blocking_tasklet in the reactor tasklet throws reactor_blocked_error before the function starts") {
  reactor r;
  bool started = false;
  bool refused = false;
  auto work = blocking_tasklet([&] { started = true; });
  r.call_later(0ms, [&] {
    try {
      work();
    } catch (const reactor_blocked_error&) {
      refused = true;
    }
    r.stop();
  });
  r.run();
  CHECK(refused);
  CHECK_FALSE(started);
}

TEST_CASE("sleep in the reactor tasklet throws reactor_blocked_error") {
  reactor r;
  bool refused = false;
  r.call_later(0ms, [&] {
    try {
      twistlet::sleep(1ms);
    } catch (const reactor_blocked_error&) {
      refused = true;
    }
    r.stop();
  });
  r.run();
  CHECK(refused);
}

TEST_CASE("sleep without a reactor is a logic error") {
  REQUIRE(reactor::current() == nullptr);
  CHECK_THROWS_AS(twistlet::sleep(1ms), std::logic_error);
}

TEST_CASE("deferred_tasklet in the reactor tasklet runs the function at once and its deferred fires later") {
  reactor r;
  event_log log;
  r.call_later(0ms, [&] {
    deferred<int> d = deferred_tasklet([&] {
      log.push_back("function starts");
      twistlet::sleep(1ms);
      log.push_back("function resumes");
      return 7;
    })();
    log.push_back("reactor goes on");
    d.add_callback([&](int v) {
      log.push_back("fired with " + std::to_string(v));
      r.stop();
    });
  });
  r.run();
  CHECK(log == event_log{"function starts", "reactor goes on", "function resumes", "fired with 7"});
}

TEST_CASE("sleep blocks only the calling tasklet, and sleepers wake in deadline order") {
  reactor r;
  event_log log;
  int awake = 0;
  tasklet::spawn([&] {
    twistlet::sleep(10ms);
    log.push_back("long");
    if (++awake == 2) r.stop();
  });
  tasklet::spawn([&] {
    twistlet::sleep(1ms);
    log.push_back("short");
    if (++awake == 2) r.stop();
  });
  tasklet::spawn([&] { log.push_back("not sleeping"); });
  r.run();
  CHECK(log == event_log{"not sleeping", "short", "long"});
}

TEST_CASE("block_on a deferred fired by a reactor timer resumes the tasklet in the reactor's turn") {
  reactor r;
  int got = 0;
  tasklet::spawn([&] {
    got = block_on(defer_later(r, 1ms, [] { return 3; }));
    r.stop();
  });
  r.run();
  CHECK(got == 3);
}

TEST_CASE("with two timers due together, a waiter woken by the first runs before the second timer") {
  reactor r;
  event_log log;
  deferred<int> d;
  tasklet::spawn([&] {
    block_on(d);
    log.push_back("waiter");
  });
  r.call_later(0ms, [&] {
    delayed_call first = r.call_later(1ms, [&] {
      log.push_back("first timer");
      d.callback(1);
      log.push_back("first timer done");
    });
    delayed_call second = r.call_later(1ms, [&] {
      log.push_back("second timer");
      r.stop();
    });
    second.delay(first.time() - second.time());  // exactly the same deadline
  });
  r.run();
  CHECK(log == event_log{"first timer", "waiter", "first timer done", "second timer"});
}

TEST_CASE("killing a sleeping tasklet cancels its timer") {
  reactor r;
  bool woke = false;
  tasklet sleeper = tasklet::spawn([&] {
    twistlet::sleep(1h);
    woke = true;
  });
  r.call_later(0ms, [&] { r.stop(); });
  r.run();
  REQUIRE(sleeper.blocked());
  sleeper.kill();
  CHECK_FALSE(sleeper.alive());
  CHECK_FALSE(woke);
  // With the hour-long timer gone, nothing is left that could fire this.
  CHECK_THROWS_AS(block_on(deferred<int>()), deadlock_error);
}

TEST_CASE("block_on in main outside run drives the reactor until the result arrives") {
  reactor r;
  event_log log;
  // The result comes from a reactor timer that the tasklet arms after its own sleep, so the
  // order does not depend on how fast the tasklet starts (a sanitizer build may take longer
  // than a fixed delay to get there).
  deferred<int> result;
  tasklet::spawn([&] {
    twistlet::sleep(1ms);
    log.push_back("tasklet ran meanwhile");
    r.call_later(1ms, [&] { result.callback(5); });
  });
  const int v = block_on(result);
  CHECK(v == 5);
  CHECK(log == event_log{"tasklet ran meanwhile"});
  CHECK_FALSE(r.running());
}

TEST_CASE("block_on in main follows a chain of timers") {
  reactor r;
  deferred<int> d = defer_later(r, 1ms).add_callback([&] { return defer_later(r, 1ms, [] { return 2; }); });
  CHECK(block_on(d) == 2);
}

TEST_CASE("block_on in main throws a failure delivered by the reactor") {
  reactor r;
  int caught = 0;
  try {
    block_on(defer_later(r, 1ms, []() -> int { throw test_error(6); }));
  } catch (const test_error& e) {
    caught = e.value;
  }
  CHECK(caught == 6);
}

TEST_CASE("block_on in main with a reactor and nothing that could fire the deferred throws deadlock_error") {
  reactor r;
  bool cancelled = false;
  deferred<int> d([&](deferred<int>&) { cancelled = true; });
  CHECK_THROWS_AS(block_on(d), deadlock_error);
  CHECK(cancelled);
}

TEST_CASE("block_on in main throws deadlock_error when the reactor is stopped first") {
  reactor r;
  r.call_later(1ms, [&] { r.stop(); });
  CHECK_THROWS_AS(block_on(defer_later(r, 1h)), deadlock_error);
}

TEST_CASE("block_on in main rethrows an exception escaping a tasklet and cancels the deferred") {
  reactor r;
  bool cancelled = false;
  deferred<int> d([&](deferred<int>&) { cancelled = true; });
  tasklet::spawn([] {
    twistlet::sleep(1ms);
    throw test_error(10);
  });
  int caught = 0;
  try {
    block_on(d);
  } catch (const test_error& e) {
    caught = e.value;
  }
  CHECK(caught == 10);
  CHECK(cancelled);
  CHECK_FALSE(r.running());
}

TEST_CASE("block_on in main waits for a thread that fires through call_from_thread") {
  reactor r;
  deferred<int> d;
  std::function<void()> fire = [d]() mutable { d.callback(12); };
  std::thread worker([&r, token = reactor::keep_alive(r), fire = std::move(fire)]() mutable {
    std::this_thread::sleep_for(2ms);
    r.call_from_thread(std::move(fire));
  });
  CHECK(block_on(d) == 12);
  worker.join();
}

TEST_CASE("block_on in main of a defer_to_thread deferred") {
  reactor r;
  CHECK(block_on(r.defer_to_thread([] { return 40 + 2; })) == 42);
}

TEST_CASE("sleep in main outside run drives the reactor") {
  reactor r;
  bool tick = false;
  r.call_later(1ms, [&] { tick = true; });
  twistlet::sleep(3ms);
  CHECK(tick);
}

TEST_CASE("blocking_tasklet in main outside run drives the reactor") {
  reactor r;
  auto slow_double = blocking_tasklet([](int x) {
    twistlet::sleep(1ms);
    return 2 * x;
  });
  CHECK(slow_double(21) == 42);
}

TEST_CASE("a reactor destroyed with tasklets asleep leaves them to be killed at thread exit") {
  // The tasklets' cancels run after the reactor is gone; they must not touch it (ASan).
  error_log errors;
  std::atomic<int> unwound{0};
  std::atomic<bool> all_asleep{false};
  std::thread([&] {
    struct count_unwind {
      std::atomic<int>& n;
      ~count_unwind() { ++n; }
    };
    reactor r;
    for (int i = 0; i < 3; ++i) {
      tasklet::spawn([&] {
        count_unwind guard{unwound};
        twistlet::sleep(1h);
      });
    }
    deferred<int> d = deferred_tasklet([&] {
      count_unwind guard{unwound};
      twistlet::sleep(1h);
      return 1;
    })();
    r.call_later(1ms, [&] { r.stop(); });
    r.run();
    all_asleep = unwound == 0;
  }).join();
  CHECK(all_asleep);
  CHECK(unwound == 4);
  CHECK(errors.messages.empty());
}

TEST_CASE("a tasklet asleep on a destroyed reactor can be killed on its thread") {
  error_log errors;
  tasklet sleeper;
  {
    reactor r;
    sleeper = tasklet::spawn([] { twistlet::sleep(1h); });
    r.call_later(0ms, [&] { r.stop(); });
    r.run();
  }
  REQUIRE(sleeper.blocked());
  sleeper.kill();
  CHECK_FALSE(sleeper.alive());
  CHECK(errors.messages.empty());
}
