// defer_later (SEMANTICS §4.5) and deferred::add_timeout (§3.5).
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <twistlet/time.hpp>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {
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

template <class T>
std::string failure_of(deferred<T> d) {
  std::string what = "no failure";
  d.add_both([&](outcome<T> o) {
    if (!o.has_value()) what = o.error().what();
  });
  return what;
}
}  // namespace

TEST_CASE("defer_later fires with the function's result after the delay") {
  manual_clock clock;
  int v = 0;
  auto d = defer_later(clock, 2s, [] { return 5; });
  d.add_callback([&](int x) { v = x; });
  clock.advance(1s);
  CHECK(v == 0);
  clock.advance(1s);
  CHECK(v == 5);
}

TEST_CASE("defer_later without a function fires with nothing") {
  manual_clock clock;
  bool fired = false;
  defer_later(clock, 1s).add_callback([&] { fired = true; });
  clock.advance(1s);
  CHECK(fired);
}

TEST_CASE("defer_later errbacks with the function's exception") {
  manual_clock clock;
  auto d = defer_later(clock, 1s, []() -> int { throw boom(); });
  clock.advance(1s);
  CHECK(failure_of(d) == "boom");
}

TEST_CASE("defer_later follows a deferred the function returns") {
  manual_clock clock;
  deferred<std::string> inner;
  std::string v;
  defer_later(clock, 1s, [&] { return inner; }).add_callback([&](std::string s) { v = s; });
  clock.advance(1s);
  CHECK(v.empty());
  inner.callback("late");
  CHECK(v == "late");
}

TEST_CASE("cancelling defer_later removes the timer and never calls the function") {
  manual_clock clock;
  bool called = false;
  auto d = defer_later(clock, 1s, [&] { called = true; });
  CHECK(clock.pending_calls().size() == 1);
  d.cancel();
  CHECK(clock.pending_calls().empty());
  clock.advance(2s);
  CHECK_FALSE(called);
  CHECK(failure_of(d) == "deferred was cancelled");
}

TEST_CASE("defer_later refuses a negative delay") {
  manual_clock clock;
  CHECK_THROWS_AS(defer_later(clock, -1s, [] {}), std::invalid_argument);
}

TEST_CASE("add_timeout errbacks timeout_error when the time runs out") {
  manual_clock clock;
  int cancels = 0;
  deferred<int> d([&](deferred<int>&) { ++cancels; });
  d.add_timeout(10s, clock);
  bool timed_out = false;
  d.add_errback([&](const failure& f) {
    timed_out = f.check<timeout_error>();
    return 0;
  });
  clock.advance(9s);
  CHECK_FALSE(d.called());
  clock.advance(1s);
  CHECK(cancels == 1);
  CHECK(timed_out);
}

TEST_CASE("add_timeout lets a result that arrives first through and cancels its timer") {
  manual_clock clock;
  deferred<int> d;
  d.add_timeout(10s, clock);
  CHECK(clock.pending_calls().size() == 1);
  d.callback(3);
  CHECK(clock.pending_calls().empty());
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 3);
  clock.advance(20s);
  CHECK(v == 3);
}

TEST_CASE("cancel before the timeout gives a plain cancelled_error") {
  manual_clock clock;
  deferred<int> d;
  d.add_timeout(10s, clock);
  d.cancel();
  bool plain = false;
  d.add_errback([&](const failure& f) {
    plain = f.check<cancelled_error>() && !f.check<timeout_error>();
    return 0;
  });
  CHECK(plain);
  CHECK(clock.pending_calls().empty());
}

TEST_CASE("stages added before add_timeout are inside the timeout") {
  manual_clock clock;
  deferred<int> d;
  d.add_errback([](const failure& f) {
    f.trap<cancelled_error>();
    return 42;  // suppresses the cancellation, so no timeout_error either
  });
  d.add_timeout(1s, clock);
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  clock.advance(1s);
  CHECK(v == 42);
}

TEST_CASE("a canceller that callbacks on timeout determines the result") {
  manual_clock clock;
  deferred<int> d([](deferred<int>& self) { self.callback(7); });
  d.add_timeout(1s, clock);
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  clock.advance(1s);
  CHECK(v == 7);
}

TEST_CASE("a canceller that errbacks on timeout determines the failure") {
  manual_clock clock;
  deferred<int> d([](deferred<int>& self) { self.errback(failure::make(boom())); });
  d.add_timeout(1s, clock);
  clock.advance(1s);
  CHECK(failure_of(d) == "boom");
}

TEST_CASE("add_timeout on a consumed deferred is a logic error") {
  manual_clock clock;
  deferred<int> d;
  d.consume([](outcome<int>&&) {});
  CHECK_THROWS_AS(d.add_timeout(1s, clock), std::logic_error);
  CHECK(clock.pending_calls().empty());
  d.callback(1);
}

TEST_CASE("a timeout fires even when only the timer holds the deferred") {
  error_log errors;
  manual_clock clock;
  bool timed_out = false;
  {
    deferred<int> d;
    d.add_timeout(1s, clock).add_errback([&](const failure& f) {
      timed_out = f.check<timeout_error>();
      return 0;
    });
  }
  clock.advance(1s);
  CHECK(timed_out);
  CHECK(errors.messages.empty());
}
