// The reactor's life cycle (API.md "Time and the reactor", SEMANTICS §5.3): binding to a
// thread, run/stop, the reactor tasklet, running again, exceptions escaping run(), errors
// from timers and handlers.
#include <catch2/catch.hpp>

#include <asio/post.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/reactor.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;
using namespace std::chrono_literals;

TEST_CASE("a reactor binds to its thread: a second one there is a logic error") {
  reactor r;
  CHECK(reactor::current() == &r);
  CHECK_THROWS_AS(reactor(), std::logic_error);
  CHECK(reactor::current() == &r);
}

TEST_CASE("after a reactor is destroyed another may be made on its thread") {
  { reactor r; }
  CHECK(reactor::current() == nullptr);
  reactor again;
  CHECK(reactor::current() == &again);
}

TEST_CASE("each thread may have its own reactor") {
  reactor here;
  bool made_there = false;
  bool current_there = false;
  std::thread([&] {
    reactor there;
    made_there = true;
    current_there = reactor::current() == &there;
  }).join();
  CHECK(made_there);
  CHECK(current_there);
  CHECK(reactor::current() == &here);
}

TEST_CASE("run starts the reactor tasklet and returns after stop") {
  reactor r;
  bool in_reactor_tasklet = false;
  bool running_inside = false;
  r.call_later(1ms, [&] {
    in_reactor_tasklet = r.reactor_tasklet() && getcurrent() == r.reactor_tasklet() && !getcurrent().is_main();
    running_inside = r.running();
    r.stop();
  });
  r.run();
  CHECK(in_reactor_tasklet);
  CHECK(running_inside);
  CHECK_FALSE(r.running());
}

TEST_CASE("reactor_tasklet is empty unless running") {
  reactor r;
  CHECK_FALSE(r.reactor_tasklet());
  tasklet seen;
  r.call_later(0ms, [&] {
    seen = r.reactor_tasklet();
    r.stop();
  });
  r.run();
  CHECK(seen);
  CHECK_FALSE(seen.alive());  // the loop's tasklet ends with run()
  CHECK_FALSE(r.reactor_tasklet());
}

TEST_CASE("stop from another tasklet ends the loop") {
  reactor r;
  event_log log;
  r.call_later(0ms, [&] {
    log.push_back("timer");
    tasklet::spawn([&] {
      log.push_back("stopper");
      r.stop();
    });
  });
  r.run();
  CHECK(log == event_log{"timer", "stopper"});
  CHECK_FALSE(r.running());
}

TEST_CASE("stop outside run does nothing") {
  reactor r;
  r.stop();
  bool ran = false;
  r.call_later(0ms, [&] {
    ran = true;
    r.stop();
  });
  r.run();
  CHECK(ran);
}

TEST_CASE("runnable tasklets take turns with the reactor until stop") {
  reactor r;
  event_log log;
  int reactor_passes = 0;
  // A call_later(0) chain marks each pass of the loop; the tasklets yield between their steps.
  std::function<void()> pass = [&] {
    ++reactor_passes;
    log.push_back("pass");
    if (reactor_passes < 3)
      r.call_later(0ms, pass);
    else
      r.stop();
  };
  r.call_later(0ms, pass);
  for (const char* name : {"a", "b"}) {
    tasklet::spawn([&log, name] {
      for (int i = 0; i < 3; ++i) {
        log.push_back(std::string(name) + std::to_string(i));
        schedule();
      }
    });
  }
  r.run();
  // Each pass of the loop is followed by one turn of each runnable tasklet.
  CHECK(log == event_log{"a0", "b0", "pass", "a1", "b1", "pass", "a2", "b2", "pass"});
}

TEST_CASE("after stop run keeps running the runnable tasklets until none is left") {
  reactor r;
  event_log log;
  tasklet::spawn([&] {
    r.stop();
    for (int i = 0; i < 3; ++i) {
      log.push_back("step " + std::to_string(i));
      schedule();
    }
  });
  r.run();
  CHECK(log == event_log{"step 0", "step 1", "step 2"});
}

TEST_CASE("stop with tasklets still blocked leaves them blocked and run returns") {
  reactor r;
  channel<int> ch;
  reaper reap;
  tasklet receiver = reap.spawn([&] { ch.receive(); });
  tasklet sleeper = reap.spawn([&] { twistlet::sleep(1h); });
  r.call_later(1ms, [&] { r.stop(); });
  CHECK_NOTHROW(r.run());
  CHECK(receiver.blocked());
  CHECK(sleeper.blocked());
  CHECK(ch.balance() == -1);
}

TEST_CASE("run may be called again after it returned") {
  reactor r;
  event_log log;
  r.call_later(1ms, [&] {
    log.push_back("first");
    r.stop();
  });
  r.run();
  r.call_later(1ms, [&] {
    log.push_back("second");
    r.stop();
  });
  r.run();
  CHECK(log == event_log{"first", "second"});
}

TEST_CASE("a timer left pending when run returns fires in the next run") {
  reactor r;
  event_log log;
  r.call_later(0ms, [&] {
    r.stop();
    // Scheduled during the pass that stops the loop: it belongs to the next pass.
    r.call_later(0ms, [&] {
      log.push_back("late");
      r.stop();
    });
  });
  r.run();
  CHECK(log.empty());
  r.run();
  CHECK(log == event_log{"late"});
}

TEST_CASE("an exception escaping a tasklet leaves run and stops the reactor") {
  reactor r;
  r.call_later(1ms, [] { tasklet::spawn([] { throw test_error(7); }); });
  int value = 0;
  try {
    r.run();
  } catch (const test_error& e) {
    value = e.value;
  }
  CHECK(value == 7);
  CHECK_FALSE(r.running());
  CHECK_FALSE(r.reactor_tasklet());
}

TEST_CASE("run works again after an exception escaped it") {
  reactor r;
  r.call_later(0ms, [] { tasklet::spawn([] { throw test_error(1); }); });
  CHECK_THROWS_AS(r.run(), test_error);
  bool ran = false;
  r.call_later(1ms, [&] {
    ran = r.running() && getcurrent() == r.reactor_tasklet();
    r.stop();
  });
  r.run();
  CHECK(ran);
  CHECK_FALSE(r.running());
}

TEST_CASE("a schedule_interval tick does not outlive a run that an exception ended") {
  // A tick left behind would keep the timer queue busy forever: block_on in main could then
  // never see that nothing is left, and would hang instead of throwing deadlock_error.
  reactor r(reactor_options{.schedule_interval = 1ms});
  r.call_later(2ms, [] { tasklet::spawn([] { throw test_error(2); }); });
  CHECK_THROWS_AS(r.run(), test_error);
  CHECK_THROWS_AS(block_on(deferred<int>()), deadlock_error);
}

TEST_CASE("run from inside the loop is a logic error") {
  reactor r;
  bool refused = false;
  r.call_later(0ms, [&] {
    try {
      r.run();
    } catch (const std::logic_error&) {
      refused = true;
    }
    r.stop();
  });
  r.run();
  CHECK(refused);
}

TEST_CASE("an exception from a timer is reported and the loop carries on") {
  error_log errors;
  reactor r;
  event_log log;
  r.call_later(1ms, [] { throw test_error(3); });
  r.call_later(2ms, [&] {
    log.push_back("after");
    r.stop();
  });
  r.run();
  CHECK(log == event_log{"after"});
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 3");
}

TEST_CASE("an exception from an Asio handler is reported and the loop carries on") {
  error_log errors;
  reactor r;
  bool after = false;
  asio::post(r.context(), [] { throw test_error(4); });
  // Stopped from a handler queued behind the throwing one, not from a timer: a timer that is
  // already due at the loop's first pass (a slow sanitizer build) would stop the loop before
  // it ever polls Asio.
  asio::post(r.context(), [&] {
    r.call_later(0ms, [&] {
      after = true;
      r.stop();
    });
  });
  r.run();
  CHECK(after);
  REQUIRE(errors.messages.size() == 1);
  CHECK(errors.messages[0] == "test_error 4");
}

TEST_CASE("reactor call_later refuses a negative delay and an empty function") {
  reactor r;
  CHECK_THROWS_AS(r.call_later(-1ms, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(r.call_later(1ms, std::function<void()>()), std::invalid_argument);
}

TEST_CASE("the reactor's now follows steady_clock") {
  reactor r;
  const auto before = std::chrono::steady_clock::now();
  const time_point t = r.now();
  const auto after = std::chrono::steady_clock::now();
  CHECK(t.time_since_epoch() >= before.time_since_epoch());
  CHECK(t.time_since_epoch() <= after.time_since_epoch());
}

TEST_CASE("a cancelled reactor timer never runs") {
  reactor r;
  bool ran = false;
  delayed_call c = r.call_later(1ms, [&] { ran = true; });
  c.cancel();
  r.call_later(3ms, [&] { r.stop(); });
  r.run();
  CHECK_FALSE(ran);
  CHECK_FALSE(c.active());
}

TEST_CASE("destroying a reactor cancels its pending timers") {
  delayed_call c;
  {
    reactor r;
    c = r.call_later(1h, [] {});
    CHECK(c.active());
  }
  CHECK_FALSE(c.active());
  CHECK(c.cancelled());
}
