// The reactor's thread-safe entry points (SEMANTICS §3.10): call_from_thread (FIFO per
// thread, wakes a sleeping reactor, errors reported), defer_to_thread (value, exception, fired
// in the reactor tasklet, pool size), run_until with keep_alive tokens.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;
using namespace std::chrono_literals;

TEST_CASE("call_from_thread runs calls from several threads, each thread's in FIFO order") {
  static constexpr int threads = 4;
  static constexpr int per_thread = 500;
  reactor r;
  std::vector<std::pair<int, int>> seen;  // (thread, sequence), in the order they ran
  std::vector<std::thread> posters;
  r.call_later(0ms, [&] {
    for (int t = 0; t < threads; ++t) {
      posters.emplace_back([&r, &seen, t] {
        for (int i = 0; i < per_thread; ++i) {
          r.call_from_thread([&r, &seen, t, i] {
            seen.emplace_back(t, i);
            if (seen.size() == threads * per_thread) r.stop();
          });
        }
      });
    }
  });
  r.run();
  for (auto& p : posters) p.join();
  REQUIRE(seen.size() == threads * per_thread);
  std::vector<int> next(threads, 0);
  bool in_order = true;
  for (auto [t, i] : seen) {
    if (i != next[static_cast<std::size_t>(t)]) in_order = false;
    next[static_cast<std::size_t>(t)] = i + 1;
  }
  CHECK(in_order);
  for (int n : next) CHECK(n == per_thread);
}

TEST_CASE("call_from_thread wakes a sleeping reactor") {
  reactor r;
  bool woken = false;
  bool safety_fired = false;
  std::thread poster;
  r.call_later(0ms, [&] {
    poster = std::thread([&] {
      std::this_thread::sleep_for(5ms);  // long enough for the reactor to be asleep
      r.call_from_thread([&] {
        woken = true;
        r.stop();
      });
    });
  });
  // Only a lost wake-up lets this one fire.
  r.call_later(60s, [&] {
    safety_fired = true;
    r.stop();
  });
  r.run();
  poster.join();
  CHECK(woken);
  CHECK_FALSE(safety_fired);
}

TEST_CASE("call_from_thread runs its function in the reactor tasklet") {
  reactor r;
  bool in_reactor_tasklet = false;
  std::thread poster;
  r.call_later(0ms, [&] {
    poster = std::thread([&] {
      r.call_from_thread([&] {
        in_reactor_tasklet = getcurrent() == r.reactor_tasklet();
        r.stop();
      });
    });
  });
  r.run();
  poster.join();
  CHECK(in_reactor_tasklet);
}

TEST_CASE("an exception from a call_from_thread function is reported and the loop carries on") {
  error_log errors;
  reactor r;
  bool after = false;
  std::thread([&] {
    r.call_from_thread([] { throw test_error(5); });
    r.call_from_thread([&] {
      after = true;
      r.stop();
    });
  }).join();
  r.run();
  CHECK(after);
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 5");
}

TEST_CASE("call_from_thread refuses an empty function") {
  reactor r;
  CHECK_THROWS_AS(r.call_from_thread(std::function<void()>()), std::invalid_argument);
}

TEST_CASE("defer_to_thread fires with the value in the reactor tasklet") {
  reactor r;
  const auto reactor_thread = std::this_thread::get_id();
  std::thread::id worker;
  int value = 0;
  bool in_reactor_tasklet = false;
  r.call_later(0ms, [&] {
    r.defer_to_thread([&worker] {
       worker = std::this_thread::get_id();
       return 42;
     }).add_callback([&](int v) {
      value = v;
      in_reactor_tasklet = getcurrent() == r.reactor_tasklet();
      r.stop();
    });
  });
  r.run();
  CHECK(value == 42);
  CHECK(in_reactor_tasklet);
  CHECK(worker != reactor_thread);
}

TEST_CASE("defer_to_thread errbacks with the function's exception") {
  reactor r;
  int value = 0;
  bool in_reactor_tasklet = false;
  r.call_later(0ms, [&] {
    r.defer_to_thread([]() -> int { throw test_error(9); })
        .add_errback([&](const failure& f) {
          if (const auto* e = f.get<test_error>()) value = e->value;
          in_reactor_tasklet = getcurrent() == r.reactor_tasklet();
          r.stop();
          return 0;
        });
  });
  r.run();
  CHECK(value == 9);
  CHECK(in_reactor_tasklet);
}

TEST_CASE("defer_to_thread runs as many jobs at once as the pool has threads") {
  // Each job waits for all the others: they finish only if they all run at the same time.
  constexpr int pool = 3;
  reactor r(reactor_options{.thread_pool_size = pool});
  std::latch all_started(pool);
  int finished = 0;
  for (int i = 0; i < pool; ++i) {
    r.defer_to_thread([&all_started] { all_started.arrive_and_wait(); }).add_callback([&] {
      if (++finished == pool) r.stop();
    });
  }
  r.run();
  CHECK(finished == pool);
}

TEST_CASE("block_on a defer_to_thread deferred from a tasklet") {
  reactor r;
  int value = 0;
  tasklet::spawn([&] {
    value = block_on(r.defer_to_thread([] { return 6 * 7; }));
    r.stop();
  });
  r.run();
  CHECK(value == 42);
}

TEST_CASE("destroying a reactor waits for a running pool job and drops its result") {
  std::atomic<bool> started{false};
  bool fired = false;
  {
    reactor r;
    r.defer_to_thread([&started] {
       started = true;
       std::this_thread::sleep_for(20ms);  // still running when the reactor goes
       return 1;
     }).add_callback([&](int) { fired = true; });
    while (!started) std::this_thread::yield();
  }
  CHECK_FALSE(fired);
}

TEST_CASE("run_until returns once its condition holds") {
  reactor r;
  int ticks = 0;
  r.call_later(1ms, [&] { ++ticks; });
  r.call_later(2ms, [&] { ++ticks; });
  r.run_until([&] { return ticks == 2; });
  CHECK(ticks == 2);
  CHECK_FALSE(r.running());
}

TEST_CASE("run_until follows timers that schedule further timers") {
  reactor r;
  int hops = 0;
  std::function<void()> hop = [&] {
    if (++hops < 5) r.call_later(1ms, hop);
  };
  r.call_later(1ms, hop);
  r.run_until([&] { return hops == 5; });
  CHECK(hops == 5);
}

TEST_CASE("run_until waits while a keep_alive token exists and a thread fires later") {
  reactor r;
  bool fired = false;
  // The function is made here, on the reactor's thread; the thread only moves it along.
  std::function<void()> fire = [&fired] { fired = true; };
  std::thread worker([&r, token = reactor::keep_alive(r), fire = std::move(fire)]() mutable {
    std::this_thread::sleep_for(5ms);  // long enough for the reactor to be asleep
    r.call_from_thread(std::move(fire));
  });
  r.run_until([&] { return fired; });
  worker.join();
  CHECK(fired);
}

TEST_CASE("run_until with nothing that could make progress throws deadlock_error") {
  reactor r;
  CHECK_THROWS_AS(r.run_until([] { return false; }), deadlock_error);
  CHECK_FALSE(r.running());
}

TEST_CASE("run_until throws deadlock_error when the last keep_alive token goes without a result") {
  reactor r;
  std::thread worker([token = reactor::keep_alive(r)] { std::this_thread::sleep_for(2ms); });
  CHECK_THROWS_AS(r.run_until([] { return false; }), deadlock_error);
  worker.join();
}

TEST_CASE("run_until throws deadlock_error when stop ends the loop first") {
  reactor r;
  r.call_later(1ms, [&] { r.stop(); });
  r.call_later(1h, [] {});
  CHECK_THROWS_AS(r.run_until([] { return false; }), deadlock_error);
}
