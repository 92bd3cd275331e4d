// manual_clock and delayed_call (SEMANTICS §4.1-4.2), and the timer queue's reactor mode.
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <twistlet/time.hpp>

#include "../../framework/reactor/timer_queue.hpp"

using namespace twistlet;
using namespace std::chrono_literals;

namespace {
using event = std::pair<std::string, time_point>;
time_point at(duration d) { return time_point{} + d; }

struct error_log {
  std::vector<std::string> messages;
  unhandled_error_handler old;
  error_log() {
    old = set_unhandled_error_handler([this](const failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { set_unhandled_error_handler(old); }
};
}  // namespace

TEST_CASE("manual_clock starts at the epoch and moves only by advance") {
  manual_clock clock;
  CHECK(clock.now() == time_point{});
  clock.advance(3s);
  CHECK(clock.now() == at(3s));
  clock.pump({1s, 500ms});
  CHECK(clock.now() == at(4500ms));
}

TEST_CASE("call_later refuses a negative delay and an empty function") {
  manual_clock clock;
  CHECK_THROWS_AS(clock.call_later(-1ns, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(clock.call_later(1s, std::function<void()>()), std::invalid_argument);
}

TEST_CASE("a delayed call is active with its due time until it runs") {
  manual_clock clock;
  int runs = 0;
  delayed_call c = clock.call_later(2s, [&] { ++runs; });
  CHECK(c.active());
  CHECK(c.time() == at(2s));
  clock.advance(1s);
  CHECK(runs == 0);
  clock.advance(1s);
  CHECK(runs == 1);
  CHECK_FALSE(c.active());
  CHECK(c.called());
}

TEST_CASE("advance moves now first, then runs the due calls") {
  manual_clock clock;
  time_point seen{};
  clock.call_later(1s, [&] { seen = clock.now(); });
  clock.advance(5s);
  CHECK(seen == at(5s));
}

TEST_CASE("due calls run in time order and FIFO on ties") {
  manual_clock clock;
  std::vector<std::string> log;
  clock.call_later(2s, [&] { log.push_back("c"); });
  clock.call_later(1s, [&] { log.push_back("a"); });
  clock.call_later(2s, [&] { log.push_back("d"); });
  clock.call_later(1s, [&] { log.push_back("b"); });
  clock.advance(10s);
  CHECK(log == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("calls scheduled during advance that fall due run in the same advance") {
  manual_clock clock;
  std::vector<std::string> log;
  clock.call_later(1s, [&] {
    log.push_back("first");
    clock.call_later(0s, [&] { log.push_back("scheduled inside"); });
    clock.call_later(5s, [&] { log.push_back("too late"); });
  });
  clock.call_later(1s, [&] { log.push_back("second"); });
  clock.advance(1s);
  CHECK(log == std::vector<std::string>{"first", "second", "scheduled inside"});
}

TEST_CASE("a call may advance the clock itself") {
  manual_clock clock;
  std::vector<event> log;
  clock.call_later(1s, [&] {
    log.emplace_back("a", clock.now());
    clock.advance(2s);
    log.emplace_back("a done", clock.now());
  });
  clock.call_later(2s, [&] { log.emplace_back("b", clock.now()); });
  clock.call_later(3s, [&] { log.emplace_back("c", clock.now()); });
  clock.advance(1s);
  CHECK(log == std::vector<event>{{"a", at(1s)}, {"b", at(3s)}, {"c", at(3s)}, {"a done", at(3s)}});
}

TEST_CASE("an exception from a call propagates out of advance and the rest stay pending") {
  manual_clock clock;
  std::vector<std::string> log;
  clock.call_later(1s, [&] { throw std::runtime_error("timer broke"); });
  clock.call_later(1s, [&] { log.push_back("next"); });
  CHECK_THROWS_WITH(clock.advance(1s), "timer broke");
  CHECK(log.empty());
  CHECK(clock.pending_calls().size() == 1);
  clock.advance(0s);
  CHECK(log == std::vector<std::string>{"next"});
}

TEST_CASE("pending_calls lists the active calls in due order") {
  manual_clock clock;
  delayed_call a = clock.call_later(3s, [] {});
  delayed_call b = clock.call_later(1s, [] {});
  delayed_call c = clock.call_later(2s, [] {});
  delayed_call d = clock.call_later(1s, [] {});
  c.cancel();
  CHECK(clock.pending_calls() == std::vector<delayed_call>{b, d, a});
  clock.advance(1s);
  CHECK(clock.pending_calls() == std::vector<delayed_call>{a});
  CHECK(manual_clock().pending_calls().empty());
}

TEST_CASE("a cancelled call never runs and cancelling twice raises already_cancelled_error") {
  manual_clock clock;
  bool ran = false;
  delayed_call c = clock.call_later(1s, [&] { ran = true; });
  c.cancel();
  CHECK_FALSE(c.active());
  CHECK(c.cancelled());
  CHECK_THROWS_AS(c.cancel(), already_cancelled_error);
  CHECK_THROWS_AS(c.reset(1s), already_cancelled_error);
  CHECK_THROWS_AS(c.delay(1s), already_cancelled_error);
  clock.advance(2s);
  CHECK_FALSE(ran);
}

TEST_CASE("cancelling a call that ran raises already_run_error") {
  manual_clock clock;
  delayed_call c = clock.call_later(1s, [] {});
  clock.advance(1s);
  CHECK_THROWS_AS(c.cancel(), already_run_error);
  CHECK_THROWS_AS(c.reset(1s), already_run_error);
}

TEST_CASE("a call cancelling itself while it runs gets already_run_error") {
  manual_clock clock;
  delayed_call c;
  bool raised = false;
  c = clock.call_later(1s, [&] {
    try {
      c.cancel();
    } catch (const already_run_error&) {
      raised = true;
    }
  });
  clock.advance(1s);
  CHECK(raised);
}

TEST_CASE("cancel destroys the call's function at once") {
  manual_clock clock;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  delayed_call c = clock.call_later(1s, [token] {});
  token.reset();
  CHECK_FALSE(watch.expired());
  c.cancel();
  CHECK(watch.expired());
}

TEST_CASE("an empty delayed_call handle is inactive and refuses operations") {
  delayed_call c;
  CHECK_FALSE(c.active());
  CHECK_FALSE(c);
  CHECK(c.time() == time_point{});
  CHECK_THROWS_AS(c.cancel(), std::logic_error);
  CHECK_THROWS_AS(c.reset(1s), std::logic_error);
  CHECK_THROWS_AS(c.delay(1s), std::logic_error);
}

TEST_CASE("delay moves a call later by the given amount") {
  manual_clock clock;
  bool ran = false;
  delayed_call c = clock.call_later(1s, [&] { ran = true; });
  c.delay(1s);
  CHECK(c.time() == at(2s));
  clock.advance(1500ms);
  CHECK_FALSE(ran);
  clock.advance(1s);
  CHECK(ran);
}

TEST_CASE("reset moves a call to now plus the delay, later or sooner") {
  manual_clock clock;
  bool later = false, sooner = false;
  delayed_call a = clock.call_later(2s, [&] { later = true; });
  delayed_call b = clock.call_later(4s, [&] { sooner = true; });
  clock.advance(1s);
  a.reset(3s);
  b.reset(1s);
  CHECK(a.time() == at(4s));
  CHECK(b.time() == at(2s));
  clock.advance(1s);
  CHECK(sooner);
  CHECK_FALSE(later);
  clock.advance(2s);
  CHECK(later);
}

TEST_CASE("a call reset later runs after a call scheduled for a time in between") {
  // Twisted's test_callLaterKeepsCallsOrdered and test_callLaterResetKeepsCallsOrdered.
  for (bool reset_first : {true, false}) {
    manual_clock clock;
    std::vector<event> log;
    delayed_call a = clock.call_later(1s, [&] { log.emplace_back("a", clock.now()); });
    if (reset_first) a.reset(3s);
    clock.call_later(2s, [&] { log.emplace_back("b", clock.now()); });
    if (!reset_first) a.reset(3s);
    clock.pump({1s, 1s, 1s});
    CHECK(log == std::vector<event>{{"b", at(2s)}, {"a", at(3s)}});
  }
}

TEST_CASE("a reset made inside a call keeps the calls ordered") {
  // Twisted's test_callLaterResetInsideCallKeepsCallsOrdered.
  manual_clock clock;
  std::vector<event> log;
  delayed_call b = clock.call_later(2s, [&] { log.emplace_back("b", clock.now()); });
  clock.call_later(1s, [&] { b.reset(3s); });
  clock.call_later(3s, [&] { log.emplace_back("c", clock.now()); });
  for (int i = 0; i < 10; ++i) clock.advance(500ms);
  CHECK(log == std::vector<event>{{"c", at(3s)}, {"b", at(4s)}});
}

TEST_CASE("a call moved onto an instant keeps its place relative to the calls it did not pass") {
  manual_clock clock;
  std::vector<std::string> log;
  // Moved later onto 2 s: it was ahead of b, and stays ahead.
  delayed_call a = clock.call_later(1s, [&] { log.push_back("a"); });
  clock.call_later(2s, [&] { log.push_back("b"); });
  a.delay(1s);
  // Moved earlier onto 5 s: d was ahead of it, and stays ahead.
  clock.call_later(5s, [&] { log.push_back("d"); });
  delayed_call c = clock.call_later(6s, [&] { log.push_back("c"); });
  c.reset(5s);
  clock.advance(10s);
  CHECK(log == std::vector<std::string>{"a", "b", "d", "c"});
}

TEST_CASE("destroying the clock cancels its pending calls") {
  delayed_call c;
  {
    manual_clock clock;
    c = clock.call_later(1s, [] {});
  }
  CHECK_FALSE(c.active());
  CHECK(c.cancelled());
  CHECK_THROWS_AS(c.cancel(), already_cancelled_error);
}

TEST_CASE("many cancelled and moved calls keep the queue consistent") {
  manual_clock clock;
  std::vector<delayed_call> calls;
  std::vector<int> ran;
  for (int i = 0; i < 5000; ++i) calls.push_back(clock.call_later(std::chrono::milliseconds(i), [&ran, i] { ran.push_back(i); }));
  for (int i = 0; i < 5000; ++i) {
    if (i % 3 == 0) calls[i].cancel();
    if (i % 3 == 1) calls[i].delay(10s);
  }
  CHECK(clock.pending_calls().size() == 5000 - 1667);
  clock.advance(5s);
  std::vector<int> expected;
  for (int i = 2; i < 5000; i += 3) expected.push_back(i);
  CHECK(ran == expected);
  ran.clear();
  clock.advance(10s);
  CHECK(ran.size() == 1667);
  CHECK(clock.pending_calls().empty());
}

TEST_CASE("reactor mode runs only the calls scheduled before the pass") {
  manual_clock clock;  // only provides now() for reset()
  detail::timer_queue q(clock);
  std::vector<std::string> log;
  q.schedule(at(1s), [&] {
    log.push_back("first");
    q.schedule(at(0s), [&] { log.push_back("new"); });
  });
  q.schedule(at(1s), [&] { log.push_back("second"); });
  CHECK(q.size() == 2);
  CHECK(q.earliest() == at(1s));
  CHECK(q.run_pass(at(1s)) == 2);
  CHECK(log == std::vector<std::string>{"first", "second"});
  CHECK(q.size() == 1);
  CHECK(q.earliest() == at(0s));
  CHECK(q.run_pass(at(1s)) == 1);
  CHECK(log.back() == "new");
  CHECK_FALSE(q.earliest().has_value());
}

TEST_CASE("reactor mode postpones a call moved during the pass") {
  manual_clock clock;
  detail::timer_queue q(clock);
  std::vector<std::string> log;
  delayed_call later = q.schedule(at(5s), [&] { log.push_back("moved"); });
  q.schedule(at(1s), [&] {
    log.push_back("mover");
    later.reset(-5s);  // due at once, but only in the next pass
  });
  q.run_pass(at(1s));
  CHECK(log == std::vector<std::string>{"mover"});
  q.run_pass(at(1s));
  CHECK(log == std::vector<std::string>{"mover", "moved"});
}

TEST_CASE("reactor mode reports a call's exception and goes on") {
  error_log errors;
  manual_clock clock;
  detail::timer_queue q(clock);
  bool next = false;
  q.schedule(at(0s), [] { throw std::runtime_error("timer broke"); });
  q.schedule(at(0s), [&] { next = true; });
  CHECK(q.run_pass(at(0s)) == 2);
  CHECK(next);
  CHECK(errors.messages == std::vector<std::string>{"timer broke"});
}
