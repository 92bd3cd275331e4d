// looping_call (SEMANTICS §4.4).
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <twistlet/time.hpp>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {
time_point at(duration d) { return time_point{} + d; }

struct error_log {
  std::vector<std::string> messages;
  unhandled_error_handler old;
  error_log() {
    old = set_unhandled_error_handler([this](const failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { set_unhandled_error_handler(old); }
};

struct boom : std::runtime_error {
  boom() : std::runtime_error("boom") {}
};
}  // namespace

TEST_CASE("start calls at once and then every interval") {
  manual_clock clock;
  std::vector<time_point> times;
  looping_call lc(clock, [&] { times.push_back(clock.now()); });
  lc.start(100ms);
  CHECK(lc.running());
  CHECK(lc.interval() == 100ms);
  clock.pump({50ms, 100ms, 100ms});
  CHECK(times == std::vector<time_point>{at(0ms), at(150ms), at(250ms)});
  lc.stop();
}

TEST_CASE("start without now waits one interval") {
  manual_clock clock;
  std::vector<time_point> times;
  looping_call lc(clock, [&] { times.push_back(clock.now()); });
  lc.start(100ms, false);
  CHECK(times.empty());
  clock.pump({50ms, 100ms, 100ms});
  CHECK(times == std::vector<time_point>{at(150ms), at(250ms)});
  lc.stop();
}

TEST_CASE("start refuses a negative interval and a second start, stop refuses a stopped loop") {
  manual_clock clock;
  looping_call lc(clock, [] {});
  CHECK_THROWS_AS(lc.start(-1ms), std::invalid_argument);
  CHECK_FALSE(lc.running());
  CHECK_THROWS_AS(lc.stop(), std::logic_error);
  lc.start(1s);
  CHECK_THROWS_AS(lc.start(1s), std::logic_error);
  lc.stop();
  CHECK_THROWS_AS(lc.stop(), std::logic_error);
}

TEST_CASE("stop fires the deferred from start and cancels the next call") {
  manual_clock clock;
  int calls = 0;
  looping_call lc(clock, [&] { ++calls; });
  deferred<void> d = lc.start(1s);
  bool fired = false;
  d.add_callback([&] { fired = true; });
  lc.stop();
  CHECK(fired);
  CHECK(clock.pending_calls().empty());
  clock.advance(5s);
  CHECK(calls == 1);
}

TEST_CASE("stopping before a delayed start calls nothing") {
  for (duration interval : {duration(0s), duration(10s)}) {
    manual_clock clock;
    bool ran = false;
    looping_call lc(clock, [&] { ran = true; });
    lc.start(interval, false);
    lc.stop();
    CHECK_FALSE(ran);
    CHECK(clock.pending_calls().empty());
  }
}

TEST_CASE("missed intervals are skipped when time jumps between calls") {
  // Twisted's test_reactorTimeSkips.
  manual_clock clock;
  std::vector<time_point> times;
  looping_call lc(clock, [&] { times.push_back(clock.now()); });
  lc.start(500ms);
  clock.advance(2s);
  CHECK(times == std::vector<time_point>{at(0s), at(2s)});
  clock.advance(1s);
  CHECK(times == std::vector<time_point>{at(0s), at(2s), at(3s)});
  clock.advance(0s);
  CHECK(times.size() == 3);
  lc.stop();
}

TEST_CASE("missed intervals are skipped when a call itself takes long") {
  // Twisted's test_callbackTimeSkips.
  manual_clock clock;
  std::vector<time_point> times;
  duration call_takes = 2s;
  looping_call lc(clock, [&] {
    times.push_back(clock.now());
    clock.advance(call_takes);
  });
  lc.start(500ms);
  CHECK(times == std::vector<time_point>{at(0s)});
  CHECK(clock.now() == at(2s));
  clock.advance(0s);  // 2 s is now, not the future: skipped
  CHECK(times.size() == 1);
  call_takes = 1s;
  clock.advance(500ms);
  CHECK(times == std::vector<time_point>{at(0s), at(2500ms)});
  CHECK(clock.now() == at(3500ms));
  clock.advance(0s);
  CHECK(times.size() == 2);
  call_takes = 0s;
  clock.advance(500ms);
  CHECK(times == std::vector<time_point>{at(0s), at(2500ms), at(4s)});
  lc.stop();
}

TEST_CASE("an interval of zero calls again at once on the same advance") {
  manual_clock clock;
  int calls = 0;
  looping_call* self = nullptr;
  looping_call lc(clock, [&] {
    if (++calls == 5) self->stop();
  });
  self = &lc;
  deferred<void> d = lc.start(0s, false);
  clock.advance(0s);
  CHECK(calls == 5);
  CHECK(d.called());
}

TEST_CASE("the next call waits for the deferred the function returns") {
  manual_clock clock;
  std::vector<deferred<void>> pending;
  int calls = 0;
  looping_call lc(clock, [&] {
    ++calls;
    pending.emplace_back();
    return pending.back();
  });
  lc.start(1s);
  clock.advance(5s);
  CHECK(calls == 1);
  pending[0].callback();
  CHECK(calls == 1);
  clock.advance(1s);
  CHECK(calls == 2);
  lc.stop();
  pending[1].callback();
}

TEST_CASE("stop while the function's deferred is pending fires only when it settles") {
  manual_clock clock;
  deferred<void> work;
  looping_call lc(clock, [&] { return work; });
  deferred<void> d = lc.start(1s);
  lc.stop();
  CHECK_FALSE(d.called());
  work.callback();
  CHECK(d.called());
  CHECK(clock.pending_calls().empty());
}

TEST_CASE("stop inside the function fires after the function returns") {
  manual_clock clock;
  std::vector<std::string> log;
  looping_call* self = nullptr;
  deferred<void> d;
  looping_call lc(clock, [&] {
    self->stop();
    log.push_back(d.called() ? "fired inside" : "not yet");
  });
  self = &lc;
  d = lc.start(1s, false);
  d.add_callback([&] { log.push_back("fired"); });
  clock.advance(1s);
  CHECK(log == std::vector<std::string>{"not yet", "fired"});
}

TEST_CASE("stop and then throw inside the function errbacks the deferred") {
  manual_clock clock;
  looping_call* self = nullptr;
  looping_call lc(clock, [&] {
    self->stop();
    throw boom();
  });
  self = &lc;
  deferred<void> d = lc.start(1s, false);
  bool failed = false;
  d.add_errback([&](const failure& f) { failed = f.check<boom>(); });
  clock.advance(1s);
  CHECK(failed);
}

TEST_CASE("a failing function stops the loop and errbacks the deferred") {
  manual_clock clock;
  int calls = 0;
  looping_call lc(clock, [&] {
    if (++calls == 2) throw boom();
  });
  deferred<void> d = lc.start(1s);
  bool failed = false;
  d.add_errback([&](const failure& f) { failed = f.check<boom>(); });
  clock.advance(1s);
  CHECK(failed);
  CHECK_FALSE(lc.running());
  clock.advance(5s);
  CHECK(calls == 2);
}

TEST_CASE("a failing deferred from the function errbacks the start deferred") {
  manual_clock clock;
  looping_call lc(clock, [] { return fail<void>(failure::make(boom())); });
  deferred<void> d = lc.start(1s);
  bool failed = false;
  d.add_errback([&](const failure& f) { failed = f.check<boom>(); });
  CHECK(failed);
  CHECK_FALSE(lc.running());
}

TEST_CASE("reset restarts the interval from now") {
  // Twisted's test_reset.
  manual_clock clock;
  bool ran = false;
  looping_call lc(clock, [&] { ran = true; });
  lc.start(2s, false);
  clock.advance(1s);
  lc.reset();
  clock.advance(1s);
  CHECK_FALSE(ran);
  clock.advance(1s);
  CHECK(ran);
  lc.stop();
  CHECK_THROWS_AS(lc.reset(), std::logic_error);
}

TEST_CASE("with_count passes the number of intervals elapsed since the previous call") {
  // Twisted's test_reactorTimeCountSkips.
  manual_clock clock;
  std::vector<std::pair<time_point, std::size_t>> log;
  auto lc = looping_call::with_count(clock, [&](std::size_t n) { log.emplace_back(clock.now(), n); });
  lc.start(500ms);
  CHECK(log == std::vector<std::pair<time_point, std::size_t>>{{at(0s), 1}});
  clock.advance(510ms);
  clock.advance(1510ms);
  CHECK(log == std::vector<std::pair<time_point, std::size_t>>{{at(0s), 1}, {at(510ms), 1}, {at(2020ms), 3}});
  clock.advance(0s);
  CHECK(log.size() == 3);
  lc.stop();
}

TEST_CASE("with_count counts 1 for an interval of zero") {
  manual_clock clock;
  std::vector<std::size_t> counts;
  looping_call* self = nullptr;
  auto lc = looping_call::with_count(clock, [&](std::size_t n) {
    counts.push_back(n);
    if (counts.size() == 3) self->stop();
  });
  self = &lc;
  lc.start(0s, false);
  clock.advance(0s);
  CHECK(counts == std::vector<std::size_t>{1, 1, 1});
}

TEST_CASE("destroying a running looping_call stops it") {
  error_log errors;
  manual_clock clock;
  deferred<void> d;
  int calls = 0;
  {
    looping_call lc(clock, [&] { ++calls; });
    d = lc.start(1s);
  }
  CHECK(d.called());
  clock.advance(5s);
  CHECK(calls == 1);
  CHECK(errors.messages.empty());
}
