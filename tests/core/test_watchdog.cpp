// SEMANTICS.md §1.3-§1.5: run() as the watchdog, exceptions escaping tasklets, and the
// deadlock rules.
#include "core/core_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;

static_assert(std::is_base_of_v<std::runtime_error, deadlock_error>);

namespace {
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

// ---- exceptions escaping a tasklet ----------------------------------------------------------

TEST_CASE("an exception escaping a tasklet is rethrown out of run() and the others stay for the next run()",
          "[core][watchdog]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    log.push_back("a");
    throw test_error(1);
  });
  r.spawn([&] { log.push_back("b"); });
  try {
    run();
    FAIL("run() returned normally");
  } catch (const test_error& e) {
    CHECK(e.value == 1);
  }
  CHECK(log == event_log{"a"});
  CHECK(getruncount() == 2);  // main and b: nobody was disturbed
  run();
  CHECK(log == event_log{"a", "b"});
}

TEST_CASE("an exception escaping a tasklet is rethrown out of main's schedule() bypassing the ring",
          "[core][watchdog]") {
  reaper r;
  event_log log;
  r.spawn([&] { throw test_error(2); });
  r.spawn([&] { log.push_back("b"); });
  CHECK_THROWS_AS(schedule(), test_error);
  CHECK(log.empty());
  schedule();
  CHECK(log == event_log{"b"});
}

TEST_CASE("an exception escaping a tasklet is rethrown out of main's t.run()", "[core][watchdog]") {
  reaper r;
  tasklet t = r.make([] { throw test_error(3); });
  CHECK_THROWS_AS(t.run(), test_error);
  CHECK_FALSE(t.alive());
}

TEST_CASE("an exception escaping a killed tasklet is rethrown out of main's kill()", "[core][watchdog]") {
  reaper r;
  channel<int> ch;
  tasklet t = r.spawn([&] {
    try {
      ch.receive();
    } catch (const tasklet_exit&) {
      throw test_error(4);
    }
  });
  run();
  REQUIRE(t.blocked());
  try {
    t.kill();
    FAIL("kill() returned normally");
  } catch (const test_error& e) {
    CHECK(e.value == 4);
  }
  CHECK_FALSE(t.alive());
  CHECK(ch.balance() == 0);
}

TEST_CASE("an exception escaping a tasklet while main is blocked reaches main's receive()", "[core][watchdog]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] { throw test_error(5); });
  try {
    ch.receive();
    FAIL("receive() returned normally");
  } catch (const test_error& e) {
    CHECK(e.value == 5);
  }
  CHECK(ch.balance() == 0);  // main was taken off the channel
  CHECK(getcurrent().is_main());
}

TEST_CASE("an exception escaping a tasklet while main is blocked reaches main's send()", "[core][watchdog]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] { throw test_error(6); });
  CHECK_THROWS_AS(ch.send(1), test_error);
  CHECK(ch.balance() == 0);
}

TEST_CASE("an exception escaping under a nested run() goes to that run() and not to main", "[core][watchdog]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    tasklet::spawn([] { throw test_error(7); });
    try {
      run();
      log.push_back("inner run returned");
    } catch (const test_error& e) {
      log.push_back("inner run threw " + std::to_string(e.value));
    }
  });
  run();
  CHECK(log == event_log{"inner run threw 7"});
}

TEST_CASE("tasklet_exit escaping a tasklet ends it silently", "[core][watchdog]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    log.push_back("a");
    throw tasklet_exit{};
  });
  r.spawn([&] { log.push_back("b"); });
  run();
  CHECK(log == event_log{"a", "b"});
  CHECK_FALSE(t.alive());
}

// ---- blocking when nothing else can run (§1.4) -----------------------------------------------

TEST_CASE("main blocking with nothing else runnable gets deadlock_error with the channel unchanged",
          "[core][deadlock]") {
  reaper r;
  channel<int> ch;
  try {
    ch.receive();
    FAIL("receive() returned");
  } catch (const deadlock_error& e) {
    CHECK(contains(e.what(), "deadlock"));
    CHECK(contains(e.what(), "cannot block"));
  }
  CHECK(ch.balance() == 0);
  CHECK_THROWS_AS(ch.send(1), deadlock_error);
  CHECK(ch.balance() == 0);

  // With a sender already waiting, another send from main would wait behind it for ever.
  r.spawn([&] { ch.send(7); });
  run();
  REQUIRE(ch.balance() == 1);
  CHECK_THROWS_AS(ch.send(8), deadlock_error);
  CHECK(ch.balance() == 1);
  CHECK(ch.receive() == 7);
  CHECK(ch.balance() == 0);
}

TEST_CASE("main calling schedule_remove with nothing else runnable gets deadlock_error", "[core][deadlock]") {
  CHECK_THROWS_AS(schedule_remove(), deadlock_error);
  CHECK(getcurrent().is_main());
  CHECK(getruncount() == 1);
}

TEST_CASE("a tasklet blocking while main waits in run() hands control back to run()", "[core][deadlock]") {
  reaper r;
  channel<int> ch;
  event_log log;
  tasklet t = r.spawn([&] {
    log.push_back("block");
    ch.receive();
    log.push_back("woken");
  });
  run();  // no deadlock_error: the watchdog takes over
  CHECK(log == event_log{"block"});
  CHECK(t.blocked());
  tasklet u = r.spawn([&] { schedule_remove(); });
  run();  // schedule_remove of the last runnable tasklet also just returns to run()
  CHECK(u.paused());
}

TEST_CASE("a tasklet blocking while main is blocked on a channel gets deadlock_error", "[core][deadlock]") {
  reaper r;
  channel<int> to_main, other;
  event_log log;
  r.spawn([&] {
    try {
      other.receive();
    } catch (const deadlock_error&) {
      log.push_back("deadlock in tasklet");
    }
    CHECK(other.balance() == 0);
    to_main.send(1);
  });
  CHECK(to_main.receive() == 1);
  CHECK(log == event_log{"deadlock in tasklet"});
  run();
}

TEST_CASE("a deadlock_error a tasklet does not catch propagates to the blocked main", "[core][deadlock]") {
  reaper r;
  channel<int> to_main, other;
  r.spawn([&] { other.receive(); });
  CHECK_THROWS_AS(to_main.receive(), deadlock_error);
  CHECK(to_main.balance() == 0);
  CHECK(other.balance() == 0);
}

TEST_CASE("the last tasklet ending while main receives wakes main with deadlock_error", "[core][deadlock]") {
  reaper r;
  channel<int> ch;
  event_log log;
  r.spawn([&] { log.push_back("ends"); });
  try {
    ch.receive();
    FAIL("receive() returned");
  } catch (const deadlock_error& e) {
    CHECK(contains(e.what(), "main tasklet"));
    CHECK(contains(e.what(), "receiving"));
  }
  CHECK(log == event_log{"ends"});
  CHECK(ch.balance() == 0);
}

TEST_CASE("the last tasklet ending while main sends wakes main with deadlock_error", "[core][deadlock]") {
  reaper r;
  channel<int> ch;
  r.spawn([] {});
  try {
    ch.send(1);
    FAIL("send() returned");
  } catch (const deadlock_error& e) {
    CHECK(contains(e.what(), "main tasklet"));
    CHECK(contains(e.what(), "sending"));
  }
  CHECK(ch.balance() == 0);
}

TEST_CASE("with main blocked the last runnable tasklet to block gets the deadlock and earlier ones stay blocked",
          "[core][deadlock]") {
  // Two tasklets each block on their own channel while main waits on a third: the second one
  // to block is the last runnable tasklet, so the deadlock is declared in it, and, uncaught,
  // propagates to main. The first stays blocked.
  reaper r;
  channel<int> a, b, m;
  tasklet ta = r.spawn([&] { a.receive(); });
  tasklet tb = r.spawn([&] { b.receive(); });
  CHECK_THROWS_AS(m.receive(), deadlock_error);
  CHECK(ta.blocked());
  CHECK_FALSE(tb.alive());
  CHECK(a.balance() == -1);
  CHECK(b.balance() == 0);
  CHECK(m.balance() == 0);
}
