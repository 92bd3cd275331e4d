// block_on (SEMANTICS §5.2, DESIGN decisions 1-6) between tasklets, without a reactor: the
// firing side is another tasklet. The reactor cases are in bridge_reactor_test.cpp.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;

TEST_CASE("block_on returns a fired deferred's value without a switch") {
  event_log log;
  tasklet::spawn([&] {
    const tasklet self = getcurrent();
    const std::size_t runnable = getruncount();
    const int v = block_on(succeed(5));
    log.push_back("waiter got " + std::to_string(v) + (getcurrent() == self ? " in itself" : " elsewhere"));
    CHECK(getruncount() == runnable);
  });
  tasklet::spawn([&] { log.push_back("other"); });
  run();
  // Had block_on switched, "other" would have run before the waiter went on.
  CHECK(log == event_log{"waiter got 5 in itself", "other"});
}

TEST_CASE("block_on throws a fired deferred's failure without a switch") {
  event_log log;
  tasklet::spawn([&] {
    try {
      block_on(fail<int>(failure::make(test_error(3))));
    } catch (const test_error& e) {
      log.push_back("waiter caught " + std::to_string(e.value));
    }
  });
  tasklet::spawn([&] { log.push_back("other"); });
  run();
  CHECK(log == event_log{"waiter caught 3", "other"});
}

TEST_CASE("block_on blocks until another tasklet fires the deferred") {
  deferred<std::string> d;
  std::string got;
  tasklet waiter = tasklet::spawn([&] { got = block_on(d); });
  run();
  CHECK(waiter.blocked());
  CHECK(got.empty());
  d.callback("hello");
  CHECK(got == "hello");
  CHECK_FALSE(waiter.alive());
}

TEST_CASE("block_on throws the failure as the original exception with its payload") {
  deferred<int> d;
  int payload = 0;
  tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (const test_error& e) {
      payload = e.value;
    }
  });
  tasklet::spawn([&] { d.errback(failure::make(test_error(17))); });
  run();
  CHECK(payload == 17);
}

TEST_CASE("block_on throws a failure of a non-standard exception type as that type") {
  deferred<void> d;
  int thrown = 0;
  tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (int v) {
      thrown = v;
    }
  });
  tasklet::spawn([&] { d.errback(std::make_exception_ptr(99)); });
  run();
  CHECK(thrown == 99);
}

TEST_CASE("the waiter resumes before callback returns in the firing tasklet") {
  event_log log;
  deferred<int> d;
  tasklet::spawn([&] { log.push_back("waiter got " + std::to_string(block_on(d))); });
  tasklet::spawn([&] {
    log.push_back("firing");
    d.callback(1);
    log.push_back("callback returned");
  });
  run();
  CHECK(log == event_log{"firing", "waiter got 1", "callback returned"});
}

TEST_CASE("the firing tasklet goes to the back of the run queue") {
  event_log log;
  deferred<int> d;
  tasklet::spawn([&] {
    block_on(d);
    log.push_back("waiter");
    schedule();
    log.push_back("waiter again");
  });
  tasklet::spawn([&] {
    d.callback(1);
    log.push_back("firing tasklet");
  });
  tasklet::spawn([&] { log.push_back("b"); });
  tasklet::spawn([&] { log.push_back("c"); });
  run();
  CHECK(log == event_log{"waiter", "b", "c", "firing tasklet", "waiter again"});
}

TEST_CASE("a second block_on on the same deferred is a logic error") {
  deferred<int> d;
  reaper reap;
  int first = 0;
  reap.spawn([&] { first = block_on(d); });
  run();
  CHECK_THROWS_AS(block_on(d), std::logic_error);
  d.callback(4);
  CHECK(first == 4);
  // Also once the first block_on has taken the result.
  CHECK_THROWS_AS(block_on(d), std::logic_error);
}

TEST_CASE("adding a callback after block_on is a logic error") {
  deferred<int> d;
  reaper reap;
  reap.spawn([&] { block_on(d); });
  run();
  CHECK_THROWS_AS(d.add_callback([](int v) { return v; }), std::logic_error);
  d.callback(1);
  CHECK_THROWS_AS(d.add_callback([](int v) { return v; }), std::logic_error);
  deferred<int> fired = succeed(2);
  CHECK(block_on(fired) == 2);
  CHECK_THROWS_AS(fired.add_callback([](int v) { return v; }), std::logic_error);
}

TEST_CASE("block_on on an empty handle is a logic error") {
  deferred<int> d;
  deferred<int> taken = std::move(d);
  CHECK_THROWS_AS(block_on(d), std::logic_error);
  taken.callback(0);
}

TEST_CASE("killing the waiter raises tasklet_exit out of block_on and cancels the deferred") {
  error_log errors;
  event_log log;
  deferred<int> d([&](deferred<int>&) { log.push_back("canceller"); });
  tasklet waiter = tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (const tasklet_exit&) {
      log.push_back("waiter got tasklet_exit");
      throw;
    }
  });
  run();
  waiter.kill();
  CHECK_FALSE(waiter.alive());
  CHECK(log == event_log{"canceller", "waiter got tasklet_exit"});
  CHECK(d.called());
  // The cancelled_error went to the dead waiter's consumer, which drops it quietly.
  CHECK(errors.messages.empty());
}

TEST_CASE("a dead waiter never blocks the firing tasklet") {
  error_log errors;
  event_log log;
  deferred<int> d;  // no canceller: the next callback is swallowed
  tasklet waiter = tasklet::spawn([&] { block_on(d); });
  run();
  waiter.kill();
  tasklet::spawn([&] {
    d.callback(1);
    log.push_back("firing tasklet went on");
  });
  run();
  CHECK(log == event_log{"firing tasklet went on"});
  CHECK(errors.messages.empty());
}

TEST_CASE("a dead waiter's deferred fired later through a paused chain does not block the firing tasklet") {
  error_log errors;
  event_log log;
  deferred<int> d;
  d.pause();
  d.callback(1);  // fired, but paused: block_on must wait for unpause
  tasklet waiter = tasklet::spawn([&] { block_on(d); });
  run();
  REQUIRE(waiter.blocked());
  waiter.kill();  // the cancel cannot touch a fired chain
  tasklet::spawn([&] {
    d.unpause();
    log.push_back("unpausing tasklet went on");
  });
  run();
  CHECK(log == event_log{"unpausing tasklet went on"});
  CHECK(errors.messages.empty());
}

TEST_CASE("a real failure delivered after the waiter died is reported") {
  error_log errors;
  deferred<int> d([](deferred<int>& self) { self.errback(failure::make(test_error(8))); });
  tasklet waiter = tasklet::spawn([&] { block_on(d); });
  run();
  waiter.kill();
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 8");
}

TEST_CASE("a failure that arrives through a paused chain after the waiter died is reported") {
  error_log errors;
  deferred<int> d;
  d.pause();
  d.errback(failure::make(test_error(6)));
  tasklet waiter = tasklet::spawn([&] { block_on(d); });
  run();
  waiter.kill();
  CHECK(errors.messages.empty());
  d.unpause();
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 6");
}

TEST_CASE("a canceller that throws while the waiter is killed is reported and the kill still ends the waiter") {
  error_log errors;
  deferred<int> d([](deferred<int>&) { throw test_error(12); });
  bool got_exit = false;
  tasklet waiter = tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (const tasklet_exit&) {
      got_exit = true;
      throw;
    }
  });
  run();
  waiter.kill();
  CHECK(got_exit);
  CHECK_FALSE(waiter.alive());
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 12");
}

TEST_CASE("an exception thrown into the waiter cancels the deferred and leaves block_on") {
  error_log errors;
  bool cancelled = false;
  deferred<int> d([&](deferred<int>&) { cancelled = true; });
  int caught = 0;
  tasklet waiter = tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (const test_error& e) {
      caught = e.value;
    }
  });
  run();
  waiter.throw_exception(std::make_exception_ptr(test_error(21)));
  CHECK(caught == 21);
  CHECK(cancelled);
  CHECK(errors.messages.empty());
}

TEST_CASE("block_on with no reactor on the thread, fired by another tasklet, works") {
  REQUIRE(reactor::current() == nullptr);
  deferred<int> d;
  int got = 0;
  tasklet::spawn([&] { got = block_on(d); });
  tasklet::spawn([&] { d.callback(11); });
  run();
  CHECK(got == 11);
}

TEST_CASE("block_on in main without a reactor waits for another tasklet to fire") {
  REQUIRE(reactor::current() == nullptr);
  deferred<int> d;
  tasklet::spawn([&] { d.callback(13); });
  CHECK(block_on(d) == 13);
}

TEST_CASE("block_on in main without a reactor and nothing to fire it throws deadlock_error") {
  REQUIRE(reactor::current() == nullptr);
  deferred<int> d;
  CHECK_THROWS_AS(block_on(d), deadlock_error);
}

TEST_CASE("block_on in main throws deadlock_error when the last tasklet ends without firing") {
  REQUIRE(reactor::current() == nullptr);
  deferred<int> d;
  tasklet::spawn([] {});
  CHECK_THROWS_AS(block_on(d), deadlock_error);
}

TEST_CASE("block_on inside one of the deferred's own callbacks is a logic error") {
  deferred<int> d;
  bool refused = false;
  d.add_callback([&](int v) {
    try {
      block_on(d);
    } catch (const std::logic_error&) {
      refused = true;
    }
    return v;
  });
  tasklet::spawn([&] { d.callback(1); });
  run();
  CHECK(refused);
}

TEST_CASE("block_on waits for a deferred that waits on an inner deferred") {
  deferred<int> inner;
  deferred<int> outer = succeed(1).add_callback([&](int) { return inner; });
  int got = 0;
  tasklet waiter = tasklet::spawn([&] { got = block_on(outer); });
  run();
  CHECK(waiter.blocked());
  inner.callback(30);
  CHECK(got == 30);
}

TEST_CASE("block_on waits for a paused deferred until it is unpaused") {
  deferred<int> d;
  d.pause();
  d.callback(5);
  int got = 0;
  tasklet waiter = tasklet::spawn([&] { got = block_on(d); });
  run();
  CHECK(waiter.blocked());
  d.unpause();
  CHECK(got == 5);
}

TEST_CASE("killing the waiter cancels the inner deferred its deferred waits on") {
  error_log errors;
  bool inner_cancelled = false;
  deferred<int> inner([&](deferred<int>&) { inner_cancelled = true; });
  deferred<int> outer = succeed(1).add_callback([&](int) { return inner; });
  tasklet waiter = tasklet::spawn([&] { block_on(outer); });
  run();
  waiter.kill();
  CHECK(inner_cancelled);
  CHECK(errors.messages.empty());
}

TEST_CASE("block_on moves a move-only result to the waiter") {
  deferred<std::unique_ptr<int>> d;
  std::unique_ptr<int> got;
  tasklet::spawn([&] { got = block_on(d); });
  tasklet::spawn([&] { d.callback(std::make_unique<int>(3)); });
  run();
  REQUIRE(got);
  CHECK(*got == 3);
}

TEST_CASE("block_on inside a catch block and throw afterwards rethrows the right exception") {
  deferred<int> d;
  int rethrown = 0;
  tasklet::spawn([&] {
    try {
      try {
        throw test_error(1);
      } catch (...) {
        block_on(d);  // the firing tasklet handles an exception of its own meanwhile
        throw;
      }
    } catch (const test_error& e) {
      rethrown = e.value;
    }
  });
  tasklet::spawn([&] {
    try {
      throw test_error(2);
    } catch (const test_error&) {
      d.callback(0);
    }
  });
  run();
  CHECK(rethrown == 1);
}

TEST_CASE("block_on of a failure inside a catch block leaves the outer exception intact") {
  deferred<int> d;
  event_log log;
  tasklet::spawn([&] {
    try {
      try {
        throw test_error(1);
      } catch (...) {
        try {
          block_on(d);
        } catch (const test_error& e) {
          log.push_back("block_on threw " + std::to_string(e.value));
        }
        throw;
      }
    } catch (const test_error& e) {
      log.push_back("rethrown " + std::to_string(e.value));
    }
  });
  tasklet::spawn([&] { d.errback(failure::make(test_error(2))); });
  run();
  CHECK(log == event_log{"block_on threw 2", "rethrown 1"});
}

TEST_CASE("block_on with the last other tasklet blocked returns control to run") {
  // A waiter that nothing can wake while main is in run(): run() returns, the waiter stays
  // blocked (SEMANTICS §1.4 row 2), and firing later still wakes it.
  deferred<int> d;
  int got = 0;
  tasklet waiter = tasklet::spawn([&] { got = block_on(d); });
  CHECK_NOTHROW(run());
  CHECK(waiter.blocked());
  d.callback(9);
  CHECK(got == 9);
}

TEST_CASE("a failure that arrives between a pending kill and the waiter's exit is reported") {
  error_log errors;
  deferred<int> d;
  bool got_exit = false;
  tasklet waiter = tasklet::spawn([&] {
    try {
      block_on(d);
    } catch (const tasklet_exit&) {
      got_exit = true;
      throw;
    }
  });
  run();
  waiter.kill(true);  // the waiter only leaves block_on when it next runs
  d.errback(failure::make(test_error(14)));
  run();
  CHECK(got_exit);
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 14");
}

TEST_CASE("a value that arrives between a pending kill and the waiter's exit is dropped quietly") {
  error_log errors;
  deferred<int> d;
  int got = 0;
  tasklet waiter = tasklet::spawn([&] { got = block_on(d); });
  run();
  waiter.kill(true);
  d.callback(15);
  run();
  CHECK(got == 0);
  CHECK_FALSE(waiter.alive());
  CHECK(errors.messages.empty());
}

TEST_CASE("killing the firing tasklet while the woken waiter runs ends it cleanly") {
  deferred<int> d;
  event_log log;
  tasklet firing;
  tasklet::spawn([&] {
    log.push_back("waiter got " + std::to_string(block_on(d)));
    firing.kill();
    log.push_back("waiter killed the firing tasklet");
  });
  firing = tasklet::spawn([&] {
    try {
      d.callback(16);
      log.push_back("firing tasklet went on");
    } catch (const tasklet_exit&) {
      log.push_back("firing tasklet got tasklet_exit from callback");
      throw;
    }
  });
  run();
  CHECK(log == event_log{"waiter got 16", "firing tasklet got tasklet_exit from callback", "waiter killed the firing tasklet"});
  CHECK_FALSE(firing.alive());
  CHECK(d.called());
}
