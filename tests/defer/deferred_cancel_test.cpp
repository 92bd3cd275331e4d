// Cancellation (SEMANTICS §3.4).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <twistlet/deferred.hpp>

using namespace twistlet;

namespace {
struct error_log {
  std::vector<std::string> messages;
  unhandled_error_handler old;
  error_log() {
    old = set_unhandled_error_handler([this](const failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { set_unhandled_error_handler(old); }
};

bool is_cancelled(deferred<int>& d) {
  bool cancelled = false;
  d.add_errback([&](const failure& f) {
    cancelled = f.check<cancelled_error>();
    return 0;
  });
  return cancelled;
}
}  // namespace

TEST_CASE("cancel without a canceller errbacks cancelled_error") {
  deferred<int> d;
  d.cancel();
  CHECK(d.called());
  CHECK(is_cancelled(d));
}

TEST_CASE("after a cancel without canceller exactly one later callback is swallowed") {
  deferred<int> d;
  d.cancel();
  CHECK_NOTHROW(d.callback(1));
  CHECK_THROWS_AS(d.callback(2), already_called_error);
  CHECK(is_cancelled(d));
}

TEST_CASE("after a cancel without canceller exactly one later errback is swallowed") {
  deferred<int> d;
  d.cancel();
  CHECK_NOTHROW(d.errback(failure::make(std::runtime_error("late"))));
  CHECK_THROWS_AS(d.errback(failure::make(std::runtime_error("later"))), already_called_error);
  CHECK(is_cancelled(d));
}

TEST_CASE("a canceller that does not fire leads to cancelled_error and no swallowed call") {
  int calls = 0;
  deferred<int> d([&](deferred<int>&) { ++calls; });
  d.cancel();
  CHECK(calls == 1);
  CHECK_THROWS_AS(d.callback(1), already_called_error);
  CHECK(is_cancelled(d));
}

TEST_CASE("a canceller that callbacks determines the result") {
  deferred<int> d([](deferred<int>& self) { self.callback(17); });
  d.cancel();
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 17);
}

TEST_CASE("a canceller that errbacks determines the result") {
  deferred<int> d([](deferred<int>& self) { self.errback(failure::make(std::out_of_range("mine"))); });
  d.cancel();
  std::string why;
  d.add_errback([&](const failure& f) {
    why = f.what();
    return 0;
  });
  CHECK(why == "mine");
}

TEST_CASE("the canceller is called at most once") {
  int calls = 0;
  deferred<int> d([&](deferred<int>&) { ++calls; });
  d.cancel();
  d.cancel();
  CHECK(calls == 1);
  CHECK(is_cancelled(d));
}

TEST_CASE("cancelling a fired deferred does nothing and does not call the canceller") {
  int calls = 0;
  deferred<int> d([&](deferred<int>&) { ++calls; });
  d.callback(3);
  d.cancel();
  CHECK(calls == 0);
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 3);

  deferred<int> e([&](deferred<int>&) { ++calls; });
  e.errback(failure::make(std::runtime_error("x")));
  e.cancel();
  CHECK(calls == 0);
  e.add_errback([](const failure&) { return 0; });
}

TEST_CASE("cancelling a chained deferred cancels the inner one") {
  int outer_canceller = 0;
  int inner_canceller = 0;
  deferred<int> inner([&](deferred<int>&) { ++inner_canceller; });
  deferred<int> outer([&](deferred<int>&) { ++outer_canceller; });
  outer.add_callback([&](int) { return inner; });
  outer.callback(0);
  outer.cancel();
  CHECK(inner_canceller == 1);
  CHECK(outer_canceller == 0);
  CHECK(is_cancelled(outer));
}

TEST_CASE("cancel reaches the innermost of nested waiting deferreds") {
  deferred<int> innermost;
  deferred<int> middle;
  deferred<int> outer;
  middle.add_callback([&](int) { return innermost; });
  middle.callback(0);
  outer.add_callback([&](int) { return middle; });
  outer.callback(0);
  outer.cancel();
  CHECK(innermost.called());
  CHECK(is_cancelled(outer));
}

TEST_CASE("a canceller's exception propagates and the deferred stays unfired") {
  deferred<int> d([](deferred<int>&) { throw std::runtime_error("canceller broke"); });
  CHECK_THROWS_WITH(d.cancel(), "canceller broke");
  CHECK_FALSE(d.called());
  d.cancel();  // the canceller is gone: now a plain cancel
  CHECK(is_cancelled(d));
}

TEST_CASE("a canceller of deferred<void> receives the handle") {
  deferred<void> d([](deferred<void>& self) { self.callback(); });
  bool ran = false;
  d.add_callback([&] { ran = true; });
  d.cancel();
  CHECK(ran);
}

TEST_CASE("cancelled_error of an unobserved chain is reported like any failure") {
  error_log errors;
  {
    deferred<int> d;
    d.cancel();
  }
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "deferred was cancelled");
}
