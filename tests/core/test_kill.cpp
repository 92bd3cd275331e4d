// SEMANTICS.md §1.5-§1.6 and the settled details of API.md: kill, throw_exception,
// tasklet_exit, misuse errors, and what happens when a paused tasklet's last handle goes.
#include "core/core_test_support.hpp"

#include <memory>

using namespace twistlet;
using namespace twistlet_test;

static_assert(!std::is_base_of_v<std::exception, tasklet_exit>, "a kill must not look like an application error");

// ---- tasklet_exit ---------------------------------------------------------------------------

TEST_CASE("tasklet_exit is not caught by catch (const std::exception&)", "[core][kill]") {
  reaper r;
  channel<int> ch;
  event_log log;
  tasklet t = r.spawn([&] {
    try {
      ch.receive();
    } catch (const std::exception&) {
      log.push_back("caught as std::exception");
    }
    log.push_back("after try");
  });
  run();
  t.kill();
  CHECK(log.empty());
  CHECK_FALSE(t.alive());
}

TEST_CASE("kill runs the destructors of the killed tasklet's frames", "[core][kill]") {
  reaper r;
  channel<int> ch;
  int destroyed = 0;
  tasklet t = r.spawn([&] {
    dtor_counter outer(destroyed);
    [&] {
      dtor_counter inner(destroyed);
      ch.receive();
    }();
  });
  run();
  REQUIRE(t.blocked());
  CHECK(destroyed == 0);
  t.kill();
  CHECK(destroyed == 2);
  CHECK(ch.balance() == 0);
}

TEST_CASE("a killed tasklet may catch tasklet_exit and carry on", "[core][kill]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    try {
      schedule_remove();
    } catch (const tasklet_exit&) {
      log.push_back("caught exit");
    }
    log.push_back("carried on");
  });
  run();
  t.kill();
  CHECK(log == event_log{"caught exit", "carried on"});
  CHECK_FALSE(t.alive());
}

TEST_CASE("kill of a tasklet that never started runs none of its function", "[core][kill]") {
  reaper r;
  bool ran = false;
  int destroyed = 0;
  auto guard = std::make_shared<dtor_counter>(destroyed);
  tasklet t = r.spawn([&ran, guard] { ran = true; });
  guard.reset();
  t.kill();
  CHECK_FALSE(ran);
  CHECK_FALSE(t.alive());
  CHECK(destroyed == 1);  // the function object was destroyed all the same
  CHECK(getruncount() == 1);
  CHECK_THROWS_AS(t.run(), std::logic_error);
  try {
    t.run();
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()).find("dead") != std::string::npos);
  }
}

TEST_CASE("kill of a paused tasklet that never started runs none of its function", "[core][kill]") {
  reaper r;
  bool ran = false;
  tasklet t = r.make([&] { ran = true; });
  t.kill();
  CHECK_FALSE(ran);
  CHECK_FALSE(t.alive());
}

TEST_CASE("kill(pending=false) switches to the victim at once", "[core][kill]") {
  reaper r;
  event_log log;
  channel<int> ch;
  tasklet t = r.spawn([&] {
    try {
      ch.receive();
    } catch (const tasklet_exit&) {
      log.push_back("victim dies");
      throw;
    }
  });
  run();
  log.push_back("before kill");
  t.kill();
  log.push_back("after kill");
  CHECK(log == event_log{"before kill", "victim dies", "after kill"});
}

TEST_CASE("kill(pending=true) only makes the victim runnable and it dies when it next runs", "[core][kill]") {
  reaper r;
  event_log log;
  channel<int> ch;
  tasklet t = r.spawn([&] {
    try {
      ch.receive();
    } catch (const tasklet_exit&) {
      log.push_back("victim dies");
      throw;
    }
  });
  r.spawn([&] { log.push_back("other"); });
  schedule();  // t blocks, other runs; main resumes with nobody runnable
  log.push_back("before kill");
  t.kill(true);
  log.push_back("after kill");
  // Taken off the channel at once, but still alive until it runs.
  CHECK(ch.balance() == 0);
  CHECK(t.alive());
  CHECK(t.scheduled());
  CHECK_FALSE(t.blocked());
  CHECK(getruncount() == 2);
  run();
  CHECK(log == event_log{"other", "before kill", "after kill", "victim dies"});
  CHECK_FALSE(t.alive());
}

TEST_CASE("kill of a runnable tasklet continues the ring from the victim's position", "[core][kill]") {
  reaper r;
  event_log log;
  r.spawn([&] { log.push_back("a"); });
  tasklet b = r.spawn([&] {
    log.push_back("b1");
    schedule();
    log.push_back("b2");
  });
  r.spawn([&] { log.push_back("c"); });
  b.run();  // b1; ring is now main a b c with b current; b yields to c, then main
  log.push_back("main");
  b.kill();  // b dies; its successor c is done, so main is next
  log.push_back("main again");
  run();
  CHECK(log == event_log{"b1", "c", "main", "main again", "a"});
}

TEST_CASE("kill of the current tasklet raises tasklet_exit synchronously", "[core][kill]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    log.push_back("before");
    getcurrent().kill();
    log.push_back("not reached");
  });
  run();
  CHECK(log == event_log{"before"});
  CHECK_FALSE(t.alive());
  CHECK_THROWS_AS(getmain().kill(), tasklet_exit);
}

TEST_CASE("kill of a dead tasklet does nothing", "[core][kill]") {
  reaper r;
  tasklet t = r.spawn([] {});
  run();
  REQUIRE_FALSE(t.alive());
  t.kill();
  t.kill(true);
  CHECK_FALSE(t.alive());
  CHECK(getruncount() == 1);
}

// ---- throw_exception ------------------------------------------------------------------------

TEST_CASE("throw_exception into a blocked tasklet raises at its receive", "[core][throw]") {
  reaper r;
  channel<int> ch;
  event_log log;
  tasklet t = r.spawn([&] {
    try {
      ch.receive();
    } catch (const test_error& e) {
      log.push_back("raised at receive: " + std::to_string(e.value));
    }
    log.push_back("continues");
  });
  run();
  REQUIRE(ch.balance() == -1);
  t.throw_exception(std::make_exception_ptr(test_error(9)));
  CHECK(log == event_log{"raised at receive: 9", "continues"});
  CHECK(ch.balance() == 0);
  CHECK_FALSE(t.alive());
}

TEST_CASE("throw_exception into a paused started tasklet raises at its schedule_remove", "[core][throw]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    try {
      schedule_remove();
    } catch (const test_error& e) {
      log.push_back("raised " + std::to_string(e.value));
    }
  });
  run();
  REQUIRE(t.paused());
  t.throw_exception(std::make_exception_ptr(test_error(10)), true);
  CHECK(log.empty());
  run();
  CHECK(log == event_log{"raised 10"});
}

TEST_CASE("throw_exception into a fresh tasklet escapes to main before any of its body", "[core][throw]") {
  reaper r;
  bool ran = false;
  tasklet t = r.spawn([&] { ran = true; });
  try {
    t.throw_exception(std::make_exception_ptr(test_error(11)));
    FAIL("throw_exception returned normally");
  } catch (const test_error& e) {
    CHECK(e.value == 11);
  }
  CHECK_FALSE(ran);
  CHECK_FALSE(t.alive());
}

TEST_CASE("a pending throw_exception into a fresh tasklet escapes out of the next run()", "[core][throw]") {
  reaper r;
  bool ran = false;
  tasklet t = r.make([&] { ran = true; });
  t.throw_exception(std::make_exception_ptr(test_error(12)), true);
  CHECK(t.scheduled());
  CHECK_THROWS_AS(run(), test_error);
  CHECK_FALSE(ran);
  CHECK_FALSE(t.alive());
}

TEST_CASE("throw_exception into the current tasklet throws synchronously", "[core][throw]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    try {
      getcurrent().throw_exception(std::make_exception_ptr(test_error(13)));
      log.push_back("not reached");
    } catch (const test_error& e) {
      log.push_back("caught " + std::to_string(e.value));
    }
  });
  run();
  CHECK(log == event_log{"caught 13"});
  CHECK_THROWS_AS(getmain().throw_exception(std::make_exception_ptr(test_error(14))), test_error);
}

TEST_CASE("throw_exception into a dead tasklet is a logic error unless it is a tasklet_exit",
          "[core][throw]") {
  reaper r;
  tasklet t = r.spawn([] {});
  run();
  REQUIRE_FALSE(t.alive());
  CHECK_THROWS_AS(t.throw_exception(std::make_exception_ptr(test_error(15))), std::logic_error);
  CHECK_NOTHROW(t.throw_exception(std::make_exception_ptr(tasklet_exit{})));
  CHECK_NOTHROW(t.throw_exception(std::make_exception_ptr(tasklet_exit{}), true));
  CHECK(getruncount() == 1);
}

TEST_CASE("throw_exception of a null exception_ptr is a logic error", "[core][throw]") {
  reaper r;
  tasklet t = r.make([] {});
  CHECK_THROWS_AS(t.throw_exception(nullptr), std::logic_error);
  CHECK(t.paused());
}

TEST_CASE("throw_exception(pending=false) into a blocked tasklet resumes the caller when it yields",
          "[core][throw]") {
  reaper r;
  channel<int> ch;
  event_log log;
  tasklet t = r.spawn([&] {
    for (;;) {
      try {
        ch.receive();
      } catch (const test_error& e) {
        log.push_back("t got " + std::to_string(e.value));
      }
    }
  });
  r.spawn([&] { log.push_back("other"); });
  schedule();
  // t is inserted just before main, so main resumes as soon as t blocks again.
  t.throw_exception(std::make_exception_ptr(test_error(1)));
  log.push_back("main");
  t.throw_exception(std::make_exception_ptr(test_error(2)));
  log.push_back("main");
  CHECK(log == event_log{"other", "t got 1", "main", "t got 2", "main"});
  CHECK(t.blocked());
}

// ---- misuse ---------------------------------------------------------------------------------

TEST_CASE("run and insert of a dead tasklet are logic errors", "[core][misuse]") {
  reaper r;
  tasklet t = r.spawn([] {});
  run();
  CHECK_THROWS_AS(t.run(), std::logic_error);
  CHECK_THROWS_AS(t.insert(), std::logic_error);
}

TEST_CASE("run and insert of a blocked tasklet are logic errors", "[core][misuse]") {
  reaper r;
  channel<int> ch;
  tasklet t = r.spawn([&] { ch.receive(); });
  run();
  REQUIRE(t.blocked());
  CHECK_THROWS_AS(t.run(), std::logic_error);
  CHECK_THROWS_AS(t.insert(), std::logic_error);
  CHECK(t.blocked());
  CHECK(ch.balance() == -1);
}

TEST_CASE("remove of a blocked or the current tasklet is a logic error", "[core][misuse]") {
  reaper r;
  channel<int> ch;
  tasklet t = r.spawn([&] { ch.receive(); });
  run();
  CHECK_THROWS_AS(t.remove(), std::logic_error);
  CHECK(t.blocked());
  CHECK_THROWS_AS(getcurrent().remove(), std::logic_error);
  bool threw = false;
  r.spawn([&] {
    try {
      getcurrent().remove();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  run();
  CHECK(threw);
}

TEST_CASE("operations on an empty tasklet handle are logic errors", "[core][misuse]") {
  tasklet t;
  CHECK_THROWS_AS(t.insert(), std::logic_error);
  CHECK_THROWS_AS(t.remove(), std::logic_error);
  CHECK_THROWS_AS(t.run(), std::logic_error);
  CHECK_THROWS_AS(t.kill(), std::logic_error);
  CHECK_THROWS_AS(t.throw_exception(std::make_exception_ptr(test_error(0))), std::logic_error);
  CHECK_FALSE(t.alive());
  CHECK_FALSE(t.blocked());
  CHECK_FALSE(t.scheduled());
  CHECK_FALSE(t.paused());
  CHECK_FALSE(t.is_main());
  CHECK_FALSE(t.is_current());
}

// ---- the last handle of a paused tasklet ----------------------------------------------------

TEST_CASE("a fresh paused tasklet whose last handle goes is discarded without running", "[core][lifetime]") {
  bool ran = false;
  int destroyed = 0;
  {
    auto guard = std::make_shared<dtor_counter>(destroyed);
    tasklet t([&ran, guard] { ran = true; });
    guard.reset();
    CHECK(destroyed == 0);
  }
  CHECK(destroyed == 1);
  CHECK(getruncount() == 1);
  run();
  CHECK_FALSE(ran);
}

TEST_CASE("a started paused tasklet whose last handle goes is killed when the scheduler next runs",
          "[core][lifetime]") {
  event_log log;
  int destroyed = 0;
  {
    tasklet t = tasklet::spawn([&] {
      dtor_counter guard(destroyed);
      log.push_back("paused");
      schedule_remove();
      log.push_back("resumed");
    });
    run();
    REQUIRE(t.paused());
  }
  // Killed pending: queued, not yet run (a handle's destructor never switches).
  CHECK(destroyed == 0);
  CHECK(getruncount() == 2);
  run();
  CHECK(destroyed == 1);
  CHECK(log == event_log{"paused"});
  CHECK(getruncount() == 1);
}

TEST_CASE("a runnable tasklet whose handle is dropped still runs (fire and forget)", "[core][lifetime]") {
  int runs = 0;
  tasklet::spawn([&] { ++runs; });
  CHECK(getruncount() == 2);
  run();
  CHECK(runs == 1);
}

TEST_CASE("a blocked tasklet whose handle is dropped stays blocked and can be woken", "[core][lifetime]") {
  channel<int> ch;
  int got = 0;
  tasklet::spawn([&] { got = ch.receive(); });
  run();
  CHECK(ch.balance() == -1);
  ch.send(42);
  CHECK(got == 42);
  CHECK(ch.balance() == 0);
}
