// SEMANTICS.md §2: channels.
#include "core/core_test_support.hpp"

#include <memory>
#include <vector>

using namespace twistlet;
using namespace twistlet_test;

namespace {

// The orders of §2.2's table. Three tasklets are spawned in a row; the first to act blocks,
// the second finds it waiting, and X shows where in the ring the other side went.
event_log receive_first(int preference) {
  reaper r;
  event_log log;
  channel<int> ch;
  ch.set_preference(preference);
  r.spawn([&] {
    log.push_back("R waits");
    int v = ch.receive();
    log.push_back("R got " + std::to_string(v));
  });
  r.spawn([&] {
    log.push_back("S sends");
    ch.send(1);
    log.push_back("S sent");
  });
  r.spawn([&] { log.push_back("X"); });
  run();
  return log;
}

event_log send_first(int preference) {
  reaper r;
  event_log log;
  channel<int> ch;
  ch.set_preference(preference);
  r.spawn([&] {
    log.push_back("S sends");
    ch.send(1);
    log.push_back("S sent");
  });
  r.spawn([&] {
    log.push_back("R receives");
    int v = ch.receive();
    log.push_back("R got " + std::to_string(v));
  });
  r.spawn([&] { log.push_back("X"); });
  run();
  return log;
}

}  // namespace

// ---- preference ------------------------------------------------------------------------------

TEST_CASE("preference -1: send to a waiting receiver switches to it and the sender goes to the back",
          "[core][channel][preference]") {
  CHECK(receive_first(-1) == event_log{"R waits", "S sends", "R got 1", "X", "S sent"});
}

TEST_CASE("preference -1: receive from a waiting sender returns at once and the sender is appended",
          "[core][channel][preference]") {
  CHECK(send_first(-1) == event_log{"S sends", "R receives", "R got 1", "X", "S sent"});
}

TEST_CASE("preference +1: send to a waiting receiver continues and the receiver is appended",
          "[core][channel][preference]") {
  CHECK(receive_first(1) == event_log{"R waits", "S sends", "S sent", "X", "R got 1"});
}

TEST_CASE("preference +1: receive from a waiting sender switches to it and the receiver goes to the back",
          "[core][channel][preference]") {
  CHECK(send_first(1) == event_log{"S sends", "R receives", "S sent", "X", "R got 1"});
}

TEST_CASE("preference 0: send to a waiting receiver continues and the receiver is appended",
          "[core][channel][preference]") {
  CHECK(receive_first(0) == event_log{"R waits", "S sends", "S sent", "X", "R got 1"});
}

TEST_CASE("preference 0: receive from a waiting sender continues and the sender is appended",
          "[core][channel][preference]") {
  CHECK(send_first(0) == event_log{"S sends", "R receives", "R got 1", "X", "S sent"});
}

TEST_CASE("the default preference is -1 and set_preference clamps to -1..1", "[core][channel][preference]") {
  channel<int> ch;
  CHECK(ch.preference() == -1);
  ch.set_preference(0);
  CHECK(ch.preference() == 0);
  ch.set_preference(1);
  CHECK(ch.preference() == 1);
  ch.set_preference(-1);
  CHECK(ch.preference() == -1);
  ch.set_preference(2);
  CHECK(ch.preference() == 1);
  ch.set_preference(-2);
  CHECK(ch.preference() == -1);
  ch.set_preference(1000000);
  CHECK(ch.preference() == 1);
  ch.set_preference(-1000000);
  CHECK(ch.preference() == -1);
}

TEST_CASE("main sending to a waiting receiver runs it at once and goes to the back of the ring",
          "[core][channel][preference]") {
  reaper r;
  event_log log;
  channel<int> ch;
  r.spawn([&] { log.push_back("got " + std::to_string(ch.receive())); });
  r.spawn([&] {
    log.push_back("other 1");
    schedule();
    log.push_back("other 2");
  });
  schedule();  // the receiver blocks; other yields back to main
  log.push_back("main sends");
  ch.send(5);
  log.push_back("main sent");
  CHECK(log == event_log{"other 1", "main sends", "got 5", "other 2", "main sent"});
}

// ---- balance and FIFO -------------------------------------------------------------------------

TEST_CASE("balance counts waiting senders positive and waiting receivers negative", "[core][channel]") {
  reaper r;
  channel<int> ch;
  CHECK(ch.balance() == 0);
  for (int i = 1; i <= 3; ++i) {
    r.spawn([&ch, i] { ch.send(i); });
    run();
    CHECK(ch.balance() == i);
  }
  CHECK(ch.receive() == 1);
  CHECK(ch.balance() == 2);
  CHECK(ch.receive() == 2);
  CHECK(ch.receive() == 3);
  CHECK(ch.balance() == 0);
  run();
  for (int i = 1; i <= 3; ++i) {
    r.spawn([&ch] { ch.receive(); });
    run();
    CHECK(ch.balance() == -i);
  }
  for (int i = 0; i < 3; ++i) ch.send(0);
  CHECK(ch.balance() == 0);
}

TEST_CASE("waiting senders are served first in first out", "[core][channel]") {
  reaper r;
  channel<int> ch;
  for (int i = 1; i <= 5; ++i) r.spawn([&ch, i] { ch.send(i * 10); });
  run();
  REQUIRE(ch.balance() == 5);
  std::vector<int> got;
  for (int i = 0; i < 5; ++i) got.push_back(ch.receive());
  CHECK(got == std::vector<int>{10, 20, 30, 40, 50});
}

TEST_CASE("waiting receivers are served first in first out", "[core][channel]") {
  reaper r;
  channel<int> ch;
  std::vector<std::pair<int, int>> got;  // (receiver, value)
  for (int i = 1; i <= 5; ++i) r.spawn([&, i] { got.emplace_back(i, ch.receive()); });
  run();
  REQUIRE(ch.balance() == -5);
  for (int v = 100; v < 105; ++v) ch.send(v);
  CHECK(got == std::vector<std::pair<int, int>>{{1, 100}, {2, 101}, {3, 102}, {4, 103}, {5, 104}});
}

// ---- exceptions, sequences --------------------------------------------------------------------

TEST_CASE("send_exception makes the receiver throw and the sender is unaffected", "[core][channel]") {
  reaper r;
  channel<int> ch;
  event_log log;
  r.spawn([&] {
    try {
      ch.receive();
      log.push_back("received a value");
    } catch (const test_error& e) {
      log.push_back("receiver threw " + std::to_string(e.value));
    }
  });
  run();
  ch.send_exception(std::make_exception_ptr(test_error(3)));
  log.push_back("sender continues");
  CHECK(log == event_log{"receiver threw 3", "sender continues"});

  // Sender first: the exception waits in the queue like a value.
  r.spawn([&] {
    ch.send_exception(std::make_exception_ptr(test_error(4)));
    log.push_back("blocked sender continues");
  });
  run();
  REQUIRE(ch.balance() == 1);
  CHECK_THROWS_AS(ch.receive(), test_error);
  CHECK(ch.balance() == 0);
  run();
  CHECK(log.back() == "blocked sender continues");
  CHECK_THROWS_AS(ch.send_exception(nullptr), std::invalid_argument);
}

TEST_CASE("send_sequence sends in order and returns the count", "[core][channel]") {
  reaper r;
  channel<int> ch;
  std::vector<int> got;
  r.spawn([&] {
    for (int i = 0; i < 10; ++i) got.push_back(ch.receive());
  });
  std::vector<int> values{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK(ch.send_sequence(values.begin(), values.end()) == 10);
  CHECK(got == values);
  CHECK(ch.send_sequence(values.begin(), values.begin()) == 0);
}

// ---- close / open -----------------------------------------------------------------------------

TEST_CASE("closing and closed follow one blocked sender through close then kill then open", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  CHECK_FALSE(ch.closing());
  CHECK_FALSE(ch.closed());
  tasklet s = r.spawn([&] { ch.send(0); });
  run();
  CHECK_FALSE(ch.closing());
  CHECK_FALSE(ch.closed());
  ch.close();
  CHECK(ch.closing());
  CHECK_FALSE(ch.closed());
  s.kill();
  CHECK(ch.closing());
  CHECK(ch.closed());
  ch.open();
  CHECK_FALSE(ch.closing());
  CHECK_FALSE(ch.closed());
}

TEST_CASE("close wakes nobody", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  tasklet t = r.spawn([&] { ch.receive(); });
  run();
  ch.close();
  run();
  CHECK(t.blocked());
  CHECK(ch.balance() == -1);
}

TEST_CASE("on a closing channel an operation that would block throws channel_closed_error",
          "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  ch.close();
  CHECK_THROWS_AS(ch.receive(), channel_closed_error);
  CHECK_THROWS_AS(ch.send(1), channel_closed_error);
  CHECK(ch.balance() == 0);
  bool threw = false;
  r.spawn([&] {
    try {
      ch.send(1);
    } catch (const channel_closed_error&) {
      threw = true;
    }
  });
  run();
  CHECK(threw);
  static_assert(std::is_base_of_v<std::runtime_error, channel_closed_error>);
}

TEST_CASE("on a closing channel an operation that finds a partner succeeds", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] { ch.send(1); });
  r.spawn([&] { ch.send(2); });
  run();
  ch.close();
  CHECK(ch.receive() == 1);
  CHECK(ch.receive() == 2);
  CHECK(ch.closed());
  CHECK_THROWS_AS(ch.receive(), channel_closed_error);
  run();

  channel<int> ch2;
  int got = 0;
  r.spawn([&] { got = ch2.receive(); });
  run();
  ch2.close();
  ch2.send(7);
  CHECK(got == 7);
  CHECK(ch2.closed());
}

TEST_CASE("range-for drains waiting senders and ends when closing with balance <= 0", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  for (int i = 1; i <= 3; ++i) r.spawn([&ch, i] { ch.send(i); });
  run();
  ch.close();
  std::vector<int> got;
  for (int v : ch) got.push_back(v);
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(ch.closed());
  run();
}

TEST_CASE("range-for ends when the sender closes before its last send", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] {
    ch.send(1);
    ch.send(2);
    ch.close();
    ch.send(3);  // the receiver is waiting, so this succeeds on the closing channel
  });
  std::vector<int> got;
  for (int v : ch) got.push_back(v);
  CHECK(got == std::vector<int>{1, 2, 3});
  run();
}

TEST_CASE("range-for ends on a received channel_closed_error", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] {
    ch.send(1);
    ch.send_exception(std::make_exception_ptr(channel_closed_error("end")));
  });
  std::vector<int> got;
  for (int v : ch) got.push_back(v);
  CHECK(got == std::vector<int>{1});
  CHECK_FALSE(ch.closing());
  run();
}

TEST_CASE("stop closes the channel and ends blocked receivers' loops with channel_closed_error",
          "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  event_log log;
  for (int i = 1; i <= 3; ++i)
    r.spawn([&, i] {
      int sum = 0;
      for (int v : ch) sum += v;
      log.push_back("r" + std::to_string(i) + " ended with " + std::to_string(sum));
    });
  run();
  REQUIRE(ch.balance() == -3);
  ch.send(10);
  ch.send(20);
  run();  // the two receivers that got a value queue again, behind r3
  CHECK(ch.stop() == 3);
  CHECK(ch.closed());
  CHECK(log == event_log{"r3 ended with 0", "r1 ended with 10", "r2 ended with 20"});
}

TEST_CASE("stop leaves blocked senders to be drained", "[core][channel][close]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] { ch.send(1); });
  run();
  CHECK(ch.stop() == 0);
  CHECK(ch.closing());
  CHECK_FALSE(ch.closed());
  CHECK(ch.receive() == 1);
  CHECK(ch.closed());
  run();
}

// ---- a blocked tasklet killed ------------------------------------------------------------------

TEST_CASE("killing blocked senders moves the balance toward 0 and discards their values", "[core][channel]") {
  reaper r;
  channel<int> ch;
  tasklet s1 = r.spawn([&] { ch.send(1); });
  tasklet s2 = r.spawn([&] { ch.send(2); });
  tasklet s3 = r.spawn([&] { ch.send(3); });
  run();
  CHECK(ch.balance() == 3);
  s1.kill();
  CHECK(ch.balance() == 2);
  s3.kill();
  CHECK(ch.balance() == 1);
  CHECK(ch.receive() == 2);  // the partner left is unaffected
  CHECK(ch.balance() == 0);
  run();
  CHECK_FALSE(s2.alive());
}

TEST_CASE("killing blocked receivers moves the balance toward 0", "[core][channel]") {
  reaper r;
  channel<int> ch;
  int got = 0;
  tasklet r1 = r.spawn([&] { ch.receive(); });
  tasklet r2 = r.spawn([&] { got = ch.receive(); });
  run();
  CHECK(ch.balance() == -2);
  r1.kill();
  CHECK(ch.balance() == -1);
  ch.send(8);
  CHECK(got == 8);
  CHECK(ch.balance() == 0);
}

// ---- handles and value types -------------------------------------------------------------------

TEST_CASE("channel handle copies refer to the same channel", "[core][channel]") {
  reaper r;
  channel<int> a;
  channel<int> b = a;
  channel<int> c;
  CHECK(a == b);
  CHECK_FALSE(a == c);
  c = a;
  CHECK(c == a);
  r.spawn([b]() mutable { b.send(3); });
  run();
  CHECK(a.balance() == 1);
  CHECK(c.receive() == 3);
}

TEST_CASE("a channel outlives its handles while a tasklet waits on it", "[core][channel]") {
  reaper r;
  auto ch = std::make_unique<channel<int>>();
  int got = 0;
  r.spawn([p = ch.get(), &got] { got = p->receive(); });
  run();
  channel<int> other_handle = *ch;
  ch.reset();  // the object the receiver called through is gone
  other_handle.send(11);
  CHECK(got == 11);

  ch = std::make_unique<channel<int>>();
  tasklet t = r.spawn([p = ch.get()] { p->receive(); });
  run();
  ch.reset();  // no handle is left while t waits
  t.kill();    // t leaves the channel, which then goes
  CHECK_FALSE(t.alive());
}

TEST_CASE("channels carry move-only types", "[core][channel]") {
  reaper r;
  channel<std::unique_ptr<int>> ch;
  std::unique_ptr<int> got;
  r.spawn([&] { got = ch.receive(); });
  run();
  ch.send(std::make_unique<int>(5));  // receiver waiting
  REQUIRE(got);
  CHECK(*got == 5);
  r.spawn([&] { ch.send(std::make_unique<int>(6)); });
  run();
  auto p = ch.receive();  // sender waiting
  REQUIRE(p);
  CHECK(*p == 6);
  r.spawn([&] {
    ch.send(std::make_unique<int>(7));
    ch.close();
    ch.send(std::make_unique<int>(8));
  });
  std::vector<int> seen;
  for (auto& q : ch) seen.push_back(*q);
  CHECK(seen == std::vector<int>{7, 8});
  run();
}

TEST_CASE("channels carry types without a default constructor", "[core][channel]") {
  struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
  };
  static_assert(!std::is_default_constructible_v<no_default>);
  reaper r;
  channel<no_default> ch;
  int got = 0;
  r.spawn([&] { got = ch.receive().value; });
  run();
  ch.send(no_default(4));
  CHECK(got == 4);
  r.spawn([&] { ch.send(no_default(5)); });
  run();
  CHECK(ch.receive().value == 5);
  std::vector<no_default> src{no_default(1), no_default(2)};
  r.spawn([&] {
    ch.receive();
    ch.receive();
  });
  CHECK(ch.send_sequence(src.begin(), src.end()) == 2);
  run();
}
