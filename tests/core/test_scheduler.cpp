// SEMANTICS.md §1.1-§1.3: the run queue, the switching primitives and the state flags.
#include "core/core_test_support.hpp"

#include <memory>
#include <set>

using namespace twistlet;
using namespace twistlet_test;

TEST_CASE("new tasklets run in creation order", "[core][scheduler]") {
  reaper r;
  event_log log;
  for (const char* name : {"a", "b", "c"})
    r.spawn([&log, name] {
      log.push_back(std::string(name) + "1");
      schedule();
      log.push_back(std::string(name) + "2");
    });
  run();
  CHECK(log == event_log{"a1", "b1", "c1", "a2", "b2", "c2"});
}

TEST_CASE("getruncount counts the ring including the current tasklet", "[core][scheduler]") {
  reaper r;
  CHECK(getruncount() == 1);
  std::vector<std::size_t> seen;
  tasklet a = r.spawn([&] { seen.push_back(getruncount()); });
  tasklet b = r.spawn([&] { seen.push_back(getruncount()); });
  CHECK(getruncount() == 3);
  tasklet p = r.make([] {});
  CHECK(getruncount() == 3);  // a paused tasklet is not in the ring
  // Inside run() the caller is the paused watchdog, so it is not counted.
  run();
  CHECK(seen == std::vector<std::size_t>{2, 1});
  CHECK(getruncount() == 1);
}

TEST_CASE("schedule with nothing else runnable returns at once", "[core][scheduler]") {
  CHECK(getruncount() == 1);
  schedule();
  CHECK(getruncount() == 1);
}

TEST_CASE("schedule from main lets every other tasklet run once and then main", "[core][scheduler]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    log.push_back("a1");
    schedule();
    log.push_back("a2");
  });
  r.spawn([&] { log.push_back("b"); });
  schedule();
  log.push_back("main");
  schedule();
  CHECK(log == event_log{"a1", "b", "main", "a2"});
  CHECK(getruncount() == 1);
}

TEST_CASE("t.run() of a paused tasklet runs it at once and resumes the caller right after",
          "[core][scheduler]") {
  reaper r;
  event_log log;
  r.spawn([&] { log.push_back("a"); });
  tasklet p = r.make([&] {
    log.push_back("p1");
    schedule();  // the caller comes next: p was inserted just before it
    log.push_back("p2");
  });
  CHECK(p.paused());
  p.run();
  log.push_back("main");
  run();
  CHECK(log == event_log{"p1", "main", "a", "p2"});
}

TEST_CASE("t.run() of a tasklet further along the ring jumps the ring pointer", "[core][scheduler]") {
  reaper r;
  event_log log;
  r.spawn([&] { log.push_back("a"); });
  tasklet b = r.spawn([&] { log.push_back("b"); });
  r.spawn([&] { log.push_back("c"); });
  // Ring: main a b c. Running b continues round-robin from b: c runs before main, a after.
  b.run();
  log.push_back("main");
  CHECK(getruncount() == 2);
  run();
  CHECK(log == event_log{"b", "c", "main", "a"});
}

TEST_CASE("t.run() of the current tasklet does nothing", "[core][scheduler]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    getcurrent().run();
    log.push_back("self");
  });
  getmain().run();
  run();
  CHECK(log == event_log{"self"});
}

TEST_CASE("remove takes a tasklet out of the ring and insert appends it again", "[core][scheduler]") {
  reaper r;
  event_log log;
  tasklet a = r.spawn([&] { log.push_back("a"); });
  r.spawn([&] { log.push_back("b"); });
  a.remove();
  CHECK(a.paused());
  CHECK_FALSE(a.scheduled());
  CHECK(getruncount() == 2);
  a.remove();  // removing a paused tasklet changes nothing
  run();
  CHECK(log == event_log{"b"});
  CHECK(a.alive());
  a.insert();
  CHECK(a.scheduled());
  a.insert();  // already there: no second entry
  CHECK(getruncount() == 2);
  run();
  CHECK(log == event_log{"b", "a"});
  CHECK_FALSE(a.alive());
}

TEST_CASE("insert appends at the tail behind the tasklets already runnable", "[core][scheduler]") {
  reaper r;
  event_log log;
  tasklet p = r.make([&] { log.push_back("p"); });
  r.spawn([&] { log.push_back("a"); });
  r.spawn([&] {
    log.push_back("b");
    p.insert();  // the tail is just before the current tasklet b: p runs after c
  });
  r.spawn([&] { log.push_back("c"); });
  run();
  CHECK(log == event_log{"a", "b", "c", "p"});
}

TEST_CASE("schedule_remove pauses the caller until it is inserted again", "[core][scheduler]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    log.push_back("before");
    schedule_remove();
    log.push_back("after");
  });
  run();
  CHECK(log == event_log{"before"});
  CHECK(t.alive());
  CHECK(t.paused());
  CHECK_FALSE(t.scheduled());
  CHECK_FALSE(t.blocked());
  t.insert();
  run();
  CHECK(log == event_log{"before", "after"});
  CHECK_FALSE(t.alive());
}

TEST_CASE("schedule_remove lets the rest of the ring run first", "[core][scheduler]") {
  reaper r;
  event_log log;
  tasklet t = r.spawn([&] {
    log.push_back("t1");
    schedule_remove();
    log.push_back("t2");
  });
  r.spawn([&] {
    log.push_back("u1");
    t.insert();
    schedule();
    log.push_back("u2");
  });
  run();
  CHECK(log == event_log{"t1", "u1", "t2", "u2"});
}

TEST_CASE("state flags follow a tasklet through its life", "[core][scheduler]") {
  reaper r;
  channel<int> ch;
  struct flags {
    bool alive, blocked, scheduled, paused, is_main, is_current;
    bool operator==(const flags&) const = default;
  };
  auto of = [](const tasklet& t) {
    return flags{t.alive(), t.blocked(), t.scheduled(), t.paused(), t.is_main(), t.is_current()};
  };
  std::vector<flags> inside;
  tasklet t;
  t = r.make([&] {
    inside.push_back(of(t));
    inside.push_back(of(getmain()));  // main is the paused watchdog inside run()
    ch.receive();
  }, {.name = "life"});
  CHECK(t.name() == "life");
  CHECK(of(t) == flags{true, false, false, true, false, false});  // fresh: alive and paused
  t.insert();
  CHECK(of(t) == flags{true, false, true, false, false, false});  // runnable
  run();
  REQUIRE(inside.size() == 2);
  CHECK(inside[0] == flags{true, false, true, false, false, true});  // running
  CHECK(inside[1] == flags{true, false, false, true, true, false});
  CHECK(of(t) == flags{true, true, true, false, false, false});      // blocked
  CHECK(of(getmain()) == flags{true, false, true, false, true, true});
  ch.send(1);
  CHECK(of(t) == flags{false, false, false, false, false, false});   // finished
}

TEST_CASE("getcurrent and getmain name the running and the main tasklet", "[core][scheduler]") {
  reaper r;
  CHECK(getcurrent() == getmain());
  CHECK(getmain().is_main());
  CHECK(getmain().name() == "main");
  tasklet seen_current, seen_main;
  tasklet t = r.spawn([&] {
    seen_current = getcurrent();
    seen_main = getmain();
  });
  run();
  CHECK(seen_current == t);
  CHECK(seen_main == getmain());
  CHECK_FALSE(seen_current.is_main());
}

TEST_CASE("tasklet ids are unique and handles compare by identity", "[core][scheduler]") {
  std::set<std::uint64_t> ids{getmain().id()};
  std::vector<tasklet> ts;
  for (int i = 0; i < 100; ++i) {
    ts.emplace_back([] {});
    ids.insert(ts.back().id());
  }
  CHECK(ids.size() == 101);
  CHECK(ids.count(0) == 0);
  tasklet copy = ts[5];
  CHECK(copy == ts[5]);
  CHECK_FALSE(copy == ts[6]);
  CHECK(copy.id() == ts[5].id());
  tasklet empty;
  CHECK_FALSE(empty);
  CHECK(empty.id() == 0);
  CHECK(empty.name().empty());
  CHECK(empty == tasklet{});
}

TEST_CASE("tasklet handles do not hijack copying and accept move-only functions", "[core][scheduler]") {
  reaper r;
  int value = 0;
  auto owned = std::make_unique<int>(7);
  tasklet t = r.spawn([&value, p = std::move(owned)] { value = *p; });
  tasklet copy(t);
  tasklet moved(std::move(copy));
  CHECK(moved == t);
  CHECK_FALSE(copy);
  const tasklet& cref = t;
  tasklet copy2(cref);
  CHECK(copy2 == t);
  run();
  CHECK(value == 7);
}

TEST_CASE("a large function object works as well as a small one", "[core][scheduler]") {
  reaper r;
  struct big {
    char pad[64 * 1024];
    int* out;
    void operator()() const { *out = pad[0] + pad[sizeof pad - 1]; }
  };
  auto b = std::make_unique<big>();
  b->pad[0] = 3;
  b->pad[sizeof b->pad - 1] = 4;
  int out = 0;
  b->out = &out;
  r.spawn(*b);
  run();
  CHECK(out == 7);
}

TEST_CASE("run() with an empty ring returns at once", "[core][scheduler]") {
  CHECK(getruncount() == 1);
  run();
  CHECK(getruncount() == 1);
}

TEST_CASE("run() returns when the ring drains and leaves blocked tasklets blocked", "[core][scheduler]") {
  reaper r;
  event_log log;
  channel<int> ch;
  tasklet w = r.spawn([&] {
    log.push_back("waiting");
    log.push_back("got " + std::to_string(ch.receive()));
  });
  r.spawn([&] { log.push_back("other"); });
  run();
  CHECK(log == event_log{"waiting", "other"});
  CHECK(w.blocked());
  CHECK(ch.balance() == -1);
  ch.send(5);
  CHECK(log == event_log{"waiting", "other", "got 5"});
}

TEST_CASE("run() called inside a tasklet is a nested watchdog that returns first", "[core][scheduler]") {
  reaper r;
  event_log log;
  r.spawn([&] {
    log.push_back("outer start");
    tasklet::spawn([&] {
      log.push_back("inner 1");
      schedule();
      log.push_back("inner 2");
    });
    run();  // this tasklet is the watchdog now; main stays the outer one
    log.push_back("outer after run");
  });
  r.spawn([&] { log.push_back("sibling"); });
  run();
  CHECK(log == event_log{"outer start", "sibling", "inner 1", "inner 2", "outer after run"});
}

TEST_CASE("handles are copyable across the scheduler's operations", "[core][scheduler]") {
  reaper r;
  int runs = 0;
  tasklet a = r.make([&] { ++runs; });
  tasklet b = a;
  b.insert();
  CHECK(a.scheduled());
  a.remove();
  CHECK(b.paused());
  b.run();
  CHECK(runs == 1);
  CHECK_FALSE(a.alive());
}
