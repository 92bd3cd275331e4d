// Introspection: listings, what tasklets wait on, backtraces of suspended stacks, deadlock
// messages.
#include <twistlet/twistlet.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const debug::tasklet_info& find(const std::vector<debug::tasklet_info>& all, std::uint64_t id) {
  auto it = std::find_if(all.begin(), all.end(), [id](const debug::tasklet_info& t) { return t.id == id; });
  REQUIRE(it != all.end());
  return *it;
}

bool listed(std::uint64_t id) {
  const auto all = debug::list_tasklets();
  return std::any_of(all.begin(), all.end(), [id](const debug::tasklet_info& t) { return t.id == id; });
}

// A frame the backtrace test looks for; noinline, and with work after the call so that the
// call is not a tail call.
[[gnu::noinline]] void debug_test_parked_here(channel<int>& ch, int* out) {
  *out = ch.receive();
  asm volatile("" ::: "memory");
}

}  // namespace

TEST_CASE("list: ids, names, states and where each tasklet was created", "[debug]") {
  channel<int> jobs("jobs");
  const unsigned consumer_line = __LINE__ + 1;
  tasklet consumer = tasklet::spawn([&] { jobs.receive(); }, {.name = "consumer"});
  const unsigned fresh_line = __LINE__ + 1;
  tasklet fresh([] {}, {.name = "fresh"});
  tasklet ready = tasklet::spawn([] {}, {.name = "ready"});
  ready.remove();
  ready.insert();
  schedule();  // consumer blocks; ready ends
  const auto all = debug::list_tasklets();

  REQUIRE(!all.empty());
  CHECK(all.front().is_main);
  CHECK(all.front().name == "main");
  CHECK(all.front().state == debug::tasklet_state::running);
  CHECK(all.front().id == getmain().id());

  const auto& c = find(all, consumer.id());
  CHECK(c.name == "consumer");
  CHECK(c.state == debug::tasklet_state::blocked);
  CHECK(c.started);
  CHECK(c.waits_on == "receive on channel 'jobs' (balance -1)");
  CHECK(c.created_at.line() == consumer_line);
  CHECK(contains(c.created_at.file_name(), "test_introspection.cpp"));

  const auto& f = find(all, fresh.id());
  CHECK(f.state == debug::tasklet_state::paused);
  CHECK_FALSE(f.started);
  CHECK(f.waits_on.empty());
  CHECK(f.created_at.line() == fresh_line);
  CHECK_FALSE(listed(ready.id()));  // it has ended

  // Oldest first after main.
  std::vector<std::uint64_t> ids;
  for (const auto& t : all) ids.push_back(t.id);
  CHECK(std::is_sorted(ids.begin() + 1, ids.end()));

  CHECK(debug::describe(c) == "tasklet " + std::to_string(consumer.id()) +
                                  " 'consumer': blocked on receive on channel 'jobs' (balance -1); created at "
                                  "test_introspection.cpp:" + std::to_string(consumer_line));
  CHECK(debug::describe(f) == "tasklet " + std::to_string(fresh.id()) +
                                  " 'fresh': paused, not started; created at test_introspection.cpp:" +
                                  std::to_string(fresh_line));
  consumer.kill();
}

TEST_CASE("list: a sender shows the positive balance, an unnamed channel its address", "[debug]") {
  channel<std::string> named("replies");
  channel<int> unnamed;
  tasklet s1 = tasklet::spawn([&] { named.send("a"); }, {.name = "s1"});
  tasklet s2 = tasklet::spawn([&] { named.send("b"); }, {.name = "s2"});
  tasklet r = tasklet::spawn([&] { unnamed.receive(); }, {.name = "r"});
  schedule();
  const auto all = debug::list_tasklets();
  CHECK(find(all, s1.id()).waits_on == "send on channel 'replies' (balance 2)");
  CHECK(find(all, s2.id()).waits_on == "send on channel 'replies' (balance 2)");
  const std::string w = find(all, r.id()).waits_on;
  CHECK(contains(w, "receive on channel 0x"));
  CHECK(contains(w, "(balance -1)"));
  CHECK(named.name() == "replies");
  CHECK(unnamed.name().empty());
  named.close();
  CHECK(contains(find(debug::list_tasklets(), s1.id()).waits_on, "(balance 2, closing)"));
  s1.kill();
  s2.kill();
  r.kill();
}

TEST_CASE("list: block_on shows the deferred and the labels around it", "[debug]") {
  deferred<int> d;
  int got = 0;
  tasklet t = tasklet::spawn(
      [&] {
        debug::wait_label outer("loading the profile");
        {
          debug::wait_label inner(std::string("asking shard ") + std::to_string(3));
          got = block_on(d);
        }
        channel<int>("after").receive();
      },
      {.name = "fetcher"});
  schedule();
  CHECK(find(debug::list_tasklets(), t.id()).waits_on == "a deferred (block_on) [asking shard 3]");
  d.callback(42);
  CHECK(got == 42);
  // The inner label has gone; the outer one shows with the next wait.
  CHECK(find(debug::list_tasklets(), t.id()).waits_on == "receive on channel 'after' (balance -1) [loading the profile]");
  t.kill();
  // The main tasklet can carry a label too; it shows while it runs.
  {
    debug::wait_label l("main's own label");
    CHECK(debug::list_tasklets().front().waits_on == "[main's own label]");
  }
  CHECK(debug::list_tasklets().front().waits_on.empty());
}

TEST_CASE("list: sleep on a manual_clock shows its due time", "[debug]") {
  manual_clock clock;
  bool woke = false;
  tasklet t = tasklet::spawn(
      [&] {
        twistlet::sleep(clock, 5s);
        woke = true;
      },
      {.name = "sleeper"});
  schedule();
  CHECK(find(debug::list_tasklets(), t.id()).waits_on == "a deferred (block_on) [sleep, due in 5 s]");
  clock.advance(2500ms);
  CHECK(find(debug::list_tasklets(), t.id()).waits_on == "a deferred (block_on) [sleep, due in 2.5 s]");
  CHECK_FALSE(woke);
  clock.advance(2500ms);
  CHECK(woke);
  CHECK_FALSE(t.alive());
}

TEST_CASE("dump: one header line and one line per tasklet", "[debug]") {
  channel<int> in("in");
  tasklet a = tasklet::spawn([&] { in.receive(); }, {.name = "alpha"});
  schedule();
  std::ostringstream os;
  debug::dump_tasklets(os);
  const std::string text = os.str();
  const auto all = debug::list_tasklets();
  CHECK(contains(text, std::to_string(all.size()) + " tasklets:\n"));
  CHECK(contains(text, "\n  tasklet " + std::to_string(getmain().id()) + " 'main' (main): running\n"));
  CHECK(contains(text, "\n  tasklet " + std::to_string(a.id()) + " 'alpha': blocked on receive on channel 'in' (balance -1); created at test_introspection.cpp:"));
  CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<long>(all.size()) + 1);
  a.kill();
}

TEST_CASE("backtrace: a suspended tasklet's stack, taken without resuming it", "[debug]") {
  channel<int> ch("parking");
  int value = 0;
  tasklet t = tasklet::spawn([&] { debug_test_parked_here(ch, &value); }, {.name = "parked"});
  schedule();
  const std::string bt = debug::backtrace(t);
  INFO(bt);
  CHECK(contains(bt, "debug_test_parked_here"));
  CHECK(contains(bt, "#0 "));
  // Again (the tasklet now rests inside the capture), then through the listing.
  CHECK(contains(debug::backtrace(t), "debug_test_parked_here"));
  const auto all = debug::list_tasklets({.backtraces = true, .max_frames = 40});
  CHECK(contains(find(all, t.id()).backtrace, "debug_test_parked_here"));
  std::ostringstream os;
  debug::dump_tasklets(os, {.backtraces = true});
  CHECK(contains(os.str(), "    #0 "));
  // It resumes as if nothing happened, through either way of resuming.
  ch.send(7);
  CHECK(value == 7);
  CHECK_FALSE(t.alive());

  // A backtrace taken and then a kill: the exception unwinds through the capture frame.
  tasklet k = tasklet::spawn([&] { debug_test_parked_here(ch, &value); }, {.name = "killed"});
  schedule();
  CHECK(contains(debug::backtrace(k), "debug_test_parked_here"));
  k.kill();
  CHECK_FALSE(k.alive());
}

TEST_CASE("backtrace: the main tasklet, the caller, and tasklets without a stack to show", "[debug]") {
  std::string main_bt;
  tasklet t = tasklet::spawn([&] { main_bt = debug::backtrace(getmain()); }, {.name = "looker"});
  schedule();
  CHECK_FALSE(main_bt.empty());
  CHECK_FALSE(contains(main_bt, "(no backtrace"));
  CHECK(contains(debug::backtrace(getcurrent()), "#0 "));

  tasklet fresh([] {});
  CHECK(debug::backtrace(fresh) == "(no backtrace: it has not started)\n");
  CHECK(debug::backtrace(t) == "(no backtrace: it has ended)\n");
  CHECK(debug::backtrace(tasklet()) == "(no backtrace: an empty handle)\n");
  CHECK(debug::backtrace(getcurrent(), 0).empty());
}

TEST_CASE("deadlock: the message names every stuck tasklet and what it waits on", "[debug]") {
  channel<int> a("a"), b("b"), mine("mine");
  tasklet wa = tasklet::spawn([&] { a.receive(); }, {.name = "waiter-a"});
  tasklet sb = tasklet::spawn([&] { b.send(1); }, {.name = "sender-b"});
  tasklet labelled = tasklet::spawn(
      [&] {
        debug::wait_label l("waiting for the config");
        a.receive();
      },
      {.name = "labelled"});
  twistlet::run();  // all three block; run() returns
  std::string message;
  try {
    mine.receive();
  } catch (const deadlock_error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(contains(message, "the main tasklet (" + std::to_string(getmain().id()) + ")"));
  CHECK(contains(message, "cannot block on channel 'mine' (balance 0)"));
  CHECK(contains(message, "tasklet " + std::to_string(wa.id()) + " 'waiter-a' waits on receive on channel 'a' (balance -2)"));
  CHECK(contains(message, "tasklet " + std::to_string(sb.id()) + " 'sender-b' waits on send on channel 'b' (balance 1)"));
  CHECK(contains(message, "'labelled' waits on receive on channel 'a' (balance -2) [waiting for the config]"));
  wa.kill();
  sb.kill();
  labelled.kill();
}

TEST_CASE("deadlock: the main tasklet left waiting hears about the others", "[debug]") {
  channel<int> mine("mine"), other("other");
  tasklet stuck = tasklet::spawn([&] { other.receive(); }, {.name = "stuck"});
  tasklet::spawn([] {}, {.name = "finisher"});
  std::string message;
  try {
    mine.receive();
  } catch (const deadlock_error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(contains(message, "the main tasklet"));
  CHECK(contains(message, "channel 'mine'"));
  CHECK(contains(message, "tasklet " + std::to_string(stuck.id()) + " 'stuck' waits on receive on channel 'other' (balance -1)"));
  stuck.kill();
}

TEST_CASE("deadlock: a paused tasklet is listed as one nobody is left to insert", "[debug]") {
  channel<int> mine("mine");
  tasklet p = tasklet::spawn([] { schedule_remove(); }, {.name = "pauser"});
  schedule();
  REQUIRE(p.paused());
  std::string message;
  try {
    mine.receive();
  } catch (const deadlock_error& e) {
    message = e.what();
  }
  CHECK(contains(message, "'pauser' is paused"));
  p.kill();
}

TEST_CASE("list: a helper that creates tasklets can pass its caller's location on", "[debug]") {
  auto start_worker = [](std::source_location at = std::source_location::current()) {
    return tasklet::spawn([] {}, {.name = "helped", .created_at = at});
  };
  const unsigned line = __LINE__ + 1;
  tasklet t = start_worker();
  const auto all = debug::list_tasklets();
  const auto& info = find(all, t.id());
  CHECK(info.created_at.line() == line);
  CHECK(info.state == debug::tasklet_state::runnable);
  t.kill();
}
