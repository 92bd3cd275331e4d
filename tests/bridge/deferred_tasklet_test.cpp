// deferred_tasklet and blocking_tasklet (SEMANTICS §5.2, DESIGN decision 7): run()
// semantics, results and failures, kills and cancels, exit signals never reported.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;

namespace {
template <class T>
std::string failure_of(deferred<T> d) {
  std::string what = "no failure";
  d.add_both([&](outcome<T> o) {
    if (!o.has_value()) what = o.error().what();
  });
  return what;
}
}  // namespace

TEST_CASE("deferred_tasklet starts the function at once, before the call returns") {
  event_log log;
  channel<int> ch;
  reaper reap;
  auto start = deferred_tasklet([&] {
    log.push_back("function runs");
    reap.add(getcurrent());
    ch.receive();  // blocks: control comes back to the caller
    log.push_back("function resumes");
  });
  log.push_back("calling");
  deferred<void> d = start();
  log.push_back("call returned");
  CHECK_FALSE(d.called());
  tasklet::spawn([&] { ch.send(1); });
  run();
  CHECK(d.called());
  CHECK(log == event_log{"calling", "function runs", "call returned", "function resumes"});
}

TEST_CASE("a deferred_tasklet whose function never blocks has fired when the call returns") {
  deferred<int> d = deferred_tasklet([](int a, int b) { return a + b; })(2, 3);
  REQUIRE(d.called());
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 5);
}

TEST_CASE("deferred_tasklet's deferred fires with the value of a function that blocks") {
  channel<int> ch;
  deferred<int> d = deferred_tasklet([&] { return ch.receive() * 2; })();
  CHECK_FALSE(d.called());
  tasklet::spawn([&] { ch.send(21); });
  run();
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 42);
}

TEST_CASE("deferred_tasklet copies the function and the arguments into each tasklet") {
  std::string prefix = "n=";
  auto start = deferred_tasklet([prefix](int n, const std::string& suffix) { return prefix + std::to_string(n) + suffix; });
  deferred<std::string> a = start(1, std::string("!"));
  std::string temp = "?";
  deferred<std::string> b = start(2, temp);
  temp = "changed";
  prefix = "changed";
  std::string va, vb;
  a.add_callback([&](std::string s) { va = s; });
  b.add_callback([&](std::string s) { vb = s; });
  CHECK(va == "n=1!");
  CHECK(vb == "n=2?");
}

TEST_CASE("deferred_tasklet follows the deferred its function returns") {
  deferred<int> inner;
  deferred<int> d = deferred_tasklet([&] { return inner; })();
  CHECK_FALSE(d.called());
  inner.callback(8);
  int v = 0;
  d.add_callback([&](int x) { v = x; });
  CHECK(v == 8);
}

TEST_CASE("deferred_tasklet follows the failure of the deferred its function returns") {
  deferred<int> inner;
  deferred<int> d = deferred_tasklet([&] { return inner; })();
  inner.errback(failure::make(test_error(4)));
  CHECK(failure_of(d) == "test_error 4");
}

TEST_CASE("cancelling a deferred_tasklet's deferred after the function returned a deferred cancels that one") {
  bool inner_cancelled = false;
  deferred<int> inner([&](deferred<int>&) { inner_cancelled = true; });
  deferred<int> d = deferred_tasklet([&] { return inner; })();
  d.cancel();
  CHECK(inner_cancelled);
  std::string what = failure_of(d);
  CHECK(what == cancelled_error().what());
}

TEST_CASE("an exception from a deferred_tasklet's function errbacks the deferred and never escapes to main") {
  channel<int> ch;
  deferred<int> at_once = deferred_tasklet([]() -> int { throw test_error(1); })();
  deferred<int> later = deferred_tasklet([&]() -> int {
    ch.receive();
    throw test_error(2);
  })();
  tasklet::spawn([&] { ch.send(0); });
  CHECK_NOTHROW(run());
  CHECK(failure_of(at_once) == "test_error 1");
  CHECK(failure_of(later) == "test_error 2");
}

TEST_CASE("a killed deferred_tasklet errbacks tasklet_killed_error, which is never reported") {
  error_log errors;
  channel<int> ch;
  tasklet worker;
  deferred<int> d = deferred_tasklet([&] {
    worker = getcurrent();
    return ch.receive();
  })();
  worker.kill();
  CHECK_FALSE(worker.alive());
  REQUIRE(d.called());
  bool killed = false;
  bool is_cancelled = false;
  deferred<int> copy = d;
  copy.add_errback([&](const failure& f) {
    killed = f.check<tasklet_killed_error>();
    is_cancelled = f.check<cancelled_error>();
    f.raise();  // leave it unhandled: dropping the chain must still not report it
    return 0;
  });
  CHECK(killed);
  CHECK(is_cancelled);
  d = deferred<int>();
  copy = deferred<int>();
  CHECK(errors.messages.empty());
}

TEST_CASE("tasklet_exit escaping a deferred_tasklet's function errbacks tasklet_killed_error") {
  error_log errors;
  deferred<void> d = deferred_tasklet([] { throw tasklet_exit{}; })();
  bool killed = false;
  d.add_errback([&](const failure& f) { killed = f.check<tasklet_killed_error>(); });
  CHECK(killed);
  CHECK(errors.messages.empty());
}

TEST_CASE("cancelling a deferred_tasklet's deferred kills its tasklet") {
  error_log errors;
  event_log log;
  channel<int> ch;
  tasklet worker;
  deferred<int> d = deferred_tasklet([&] {
    worker = getcurrent();
    try {
      return ch.receive();
    } catch (const tasklet_exit&) {
      log.push_back("worker killed");
      throw;
    }
  })();
  d.cancel();
  CHECK(log == event_log{"worker killed"});
  CHECK_FALSE(worker.alive());
  bool killed = false;
  d.add_errback([&](const failure& f) {
    killed = f.check<tasklet_killed_error>();
    return 0;
  });
  CHECK(killed);
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_tasklet creates its tasklets with the given options") {
  std::string name;
  deferred_tasklet([&] { name = getcurrent().name(); }, tasklet_options{.name = "worker"})();
  CHECK(name == "worker");
}

TEST_CASE("blocking_tasklet returns the function's value") {
  auto add = blocking_tasklet([](int a, int b) { return a + b; });
  CHECK(add(20, 22) == 42);
  int from_tasklet = 0;
  tasklet::spawn([&] { from_tasklet = add(1, 2); });
  run();
  CHECK(from_tasklet == 3);
}

TEST_CASE("blocking_tasklet whose function does not block returns without letting others run") {
  event_log log;
  auto work = blocking_tasklet([&] { log.push_back("function"); });
  tasklet::spawn([&] {
    log.push_back("caller before");
    work();
    log.push_back("caller after");
  });
  tasklet::spawn([&] { log.push_back("other"); });
  run();
  CHECK(log == event_log{"caller before", "function", "caller after", "other"});
}

TEST_CASE("blocking_tasklet waits for a function that blocks") {
  channel<int> ch;
  auto receive_twice = blocking_tasklet([&] { return ch.receive() + ch.receive(); });
  int got = 0;
  tasklet::spawn([&] { got = receive_twice(); });
  tasklet::spawn([&] {
    ch.send(1);
    ch.send(2);
  });
  run();
  CHECK(got == 3);
}

TEST_CASE("blocking_tasklet throws the function's exception in the caller") {
  auto failing = blocking_tasklet([]() -> int { throw test_error(5); });
  int caught = 0;
  try {
    failing();
  } catch (const test_error& e) {
    caught = e.value;
  }
  CHECK(caught == 5);
}

TEST_CASE("a killed blocking_tasklet raises tasklet_killed_error in the caller") {
  channel<int> ch;
  tasklet worker;
  auto work = blocking_tasklet([&] {
    worker = getcurrent();
    return ch.receive();
  });
  bool caller_saw_kill = false;
  tasklet::spawn([&] {
    try {
      work();
    } catch (const tasklet_killed_error&) {
      caller_saw_kill = true;
    }
  });
  run();
  worker.kill();
  CHECK(caller_saw_kill);
}

TEST_CASE("killing the caller of a blocking_tasklet kills the function's tasklet") {
  error_log errors;
  channel<int> ch;
  tasklet worker;
  event_log log;
  auto work = blocking_tasklet([&] {
    worker = getcurrent();
    try {
      return ch.receive();
    } catch (const tasklet_exit&) {
      log.push_back("worker killed");
      throw;
    }
  });
  tasklet caller = tasklet::spawn([&] { work(); });
  run();
  REQUIRE(caller.blocked());
  caller.kill();
  CHECK(log == event_log{"worker killed"});
  CHECK_FALSE(worker.alive());
  CHECK_FALSE(caller.alive());
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_tasklet shares one move-only function object between its calls") {
  // Like a Python function object: every call uses the same function, so a move-only
  // function works, and what it changes in its captures is seen by the next call.
  auto counter = std::make_unique<int>(10);
  auto start = deferred_tasklet([owned = std::move(counter)](int step) mutable {
    *owned += step;
    return *owned;
  });
  int first = 0, second = 0;
  start(1).add_callback([&](int v) { first = v; });
  auto copy = start;  // copies of the callable share the function too
  copy(5).add_callback([&](int v) { second = v; });
  CHECK(first == 11);
  CHECK(second == 16);
  auto blocking = blocking_tasklet([owned = std::make_unique<int>(3)] { return *owned * 2; });
  CHECK(blocking() == 6);
  CHECK(blocking() == 6);
}
