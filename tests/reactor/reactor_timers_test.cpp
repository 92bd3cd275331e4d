// Reactor timers (SEMANTICS §4.3, §5.3, D7): FIFO on equal deadlines, calls scheduled during a
// pass wait for the next one, a call_later(0) chain starves neither cross-thread calls nor
// I/O, zero-delay and already-due calls arm no kernel timer, schedule_interval.
#include <catch2/catch.hpp>

#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/reactor.hpp>

#include "reactor/reactor_test_support.hpp"

// Asio arms its kernel timer through timerfd_settime(); defining the function here makes the
// linker bind Asio's calls in this test program to this counting wrapper, which is how the
// tests below see whether the reactor armed a kernel timer.
namespace {
std::atomic<long> g_timerfd_arms{0};
}

extern "C" int timerfd_settime(int fd, int flags, const itimerspec* new_value, itimerspec* old_value) noexcept {
  g_timerfd_arms.fetch_add(1, std::memory_order_relaxed);
  return static_cast<int>(syscall(SYS_timerfd_settime, fd, flags, new_value, old_value));
}

using namespace twistlet;
using namespace twistlet_test;
using namespace std::chrono_literals;

namespace {
long kernel_timer_arms() { return g_timerfd_arms.load(std::memory_order_relaxed); }

// How many steps a call_later(0) chain may take between a cross-thread call arriving and the
// loop running it: the step running when it arrives, and the next one (every pass drains).
constexpr int max_steps_behind = 2;
// The same for Asio handlers and I/O: while the loop stays busy it polls Asio at least every
// 32 passes (reactor.hpp), plus the step running when the event arrives.
constexpr int max_steps_behind_io = 32 + 2;
}  // namespace

TEST_CASE("reactor timers due at the same instant run in the order they were scheduled") {
  reactor r;
  event_log log;
  std::vector<delayed_call> calls;
  for (int i = 0; i < 10; ++i) calls.push_back(r.call_later(1ms, [&log, i] { log.push_back(std::to_string(i)); }));
  calls.push_back(r.call_later(1ms, [&] { r.stop(); }));
  // Each call is moved later onto one instant, so that their deadlines are exactly equal.
  const time_point instant = calls.back().time() + 2ms;
  for (auto& c : calls) c.delay(instant - c.time());
  for (const auto& c : calls) REQUIRE(c.time() == instant);
  r.run();
  CHECK(log == event_log{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

TEST_CASE("reactor timers with equal delays run in the order they were scheduled") {
  reactor r;
  std::vector<int> order;
  for (int i = 0; i < 50; ++i) r.call_later(1ms, [&order, i] { order.push_back(i); });
  r.call_later(1ms, [&] { r.stop(); });
  r.run();
  REQUIRE(order.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a call scheduled by a running reactor call waits for the next pass") {
  reactor r;
  event_log log;
  delayed_call a = r.call_later(1ms, [&] {
    log.push_back("a");
    r.call_later(0ms, [&] {
      log.push_back("scheduled by a");
      r.stop();
    });
  });
  delayed_call b = r.call_later(1ms, [&] { log.push_back("b"); });
  b.delay(a.time() - b.time());  // exactly a's deadline, so both are due in the same pass
  r.run();
  CHECK(log == event_log{"a", "b", "scheduled by a"});
}

TEST_CASE("a call_later(0) chain does not starve a cross-thread call") {
  reactor r;
  std::atomic<int> steps{0};
  std::atomic<int> posted_at{-1};
  int seen_at = -1;
  std::thread poster;
  std::function<void()> step = [&] {
    const int n = ++steps;
    if (n == 1) {
      poster = std::thread([&] {
        r.call_from_thread([&] {
          seen_at = steps.load();
          r.stop();
        });
        posted_at = steps.load();
      });
    }
    if (n < 10'000'000)
      r.call_later(0ms, step);
    else
      r.stop();
  };
  r.call_later(0ms, step);
  r.run();
  poster.join();
  REQUIRE(seen_at > 0);
  CHECK(seen_at - posted_at.load() <= max_steps_behind);
}

TEST_CASE("a call_later(0) chain does not starve a posted Asio handler") {
  reactor r;
  int steps = 0;
  int posted_at = -1;
  int seen_at = -1;
  std::function<void()> step = [&] {
    ++steps;
    if (steps == 3) {
      asio::post(r.context(), [&] {
        seen_at = steps;
        r.stop();
      });
      posted_at = steps;
    }
    if (steps < 1'000'000)
      r.call_later(0ms, step);
    else
      r.stop();
  };
  r.call_later(0ms, step);
  r.run();
  REQUIRE(seen_at > 0);
  CHECK(seen_at - posted_at <= max_steps_behind_io);
}

TEST_CASE("a call_later(0) chain does not starve socket I/O") {
  reactor r;
  asio::local::stream_protocol::socket reader(r.context());
  asio::local::stream_protocol::socket writer(r.context());
  asio::local::connect_pair(reader, writer);
  std::array<char, 16> buffer{};
  int steps = 0;
  int written_at = -1;
  int read_at = -1;
  reader.async_read_some(asio::buffer(buffer), [&](const asio::error_code& ec, std::size_t n) {
    if (!ec && n == 1) read_at = steps;
    r.stop();
  });
  std::function<void()> step = [&] {
    ++steps;
    if (steps == 3) {
      asio::write(writer, asio::buffer("x", 1));
      written_at = steps;
    }
    if (steps < 1'000'000)
      r.call_later(0ms, step);
    else
      r.stop();
  };
  r.call_later(0ms, step);
  r.run();
  REQUIRE(read_at > 0);
  CHECK(read_at - written_at <= max_steps_behind_io);
}

TEST_CASE("zero-delay calls do not arm a kernel timer") {
  reactor r;
  int steps = 0;
  long arms_at_first = 0;
  long arms_at_last = 0;
  std::function<void()> step = [&] {
    ++steps;
    if (steps == 1) arms_at_first = kernel_timer_arms();
    if (steps < 1000) {
      r.call_later(0ms, step);
    } else {
      arms_at_last = kernel_timer_arms();
      r.stop();
    }
  };
  r.call_later(0ms, step);
  r.run();
  REQUIRE(steps == 1000);
  CHECK(arms_at_last - arms_at_first == 0);
}

TEST_CASE("an already-due call does not arm a kernel timer") {
  reactor r;
  long arms_when_due = 0;
  long arms_when_run = 0;
  r.call_later(0ms, [&] {
    delayed_call later = r.call_later(1ms, [&] {
      arms_when_run = kernel_timer_arms();
      r.stop();
    });
    // Still in the pass that scheduled it; the loop next sees it already due.
    while (r.now() <= later.time()) {
    }
    arms_when_due = kernel_timer_arms();
  });
  r.run();
  CHECK(arms_when_run == arms_when_due);
}

TEST_CASE("schedule_interval wakes the reactor on a fixed period") {
  // Nothing but the tick is scheduled: each period arms the kernel timer again. Without the
  // option the count would not move and the safety timer would end the run.
  reactor r(reactor_options{.schedule_interval = 1ms});
  const long start = kernel_timer_arms();
  std::atomic<bool> done{false};
  bool safety_fired = false;
  std::thread watcher([&] {
    while (kernel_timer_arms() - start < 20) std::this_thread::sleep_for(1ms);
    r.call_from_thread([&] { r.stop(); });
    done = true;
  });
  r.call_later(30s, [&] {
    safety_fired = true;
    r.stop();
  });
  r.run();
  CHECK_FALSE(safety_fired);
  if (safety_fired) g_timerfd_arms += 1000;  // lets the watcher finish
  watcher.join();
  CHECK(done);
}
