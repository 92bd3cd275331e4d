// One scheduler per OS thread; tasklets still alive when their thread ends are killed; exit()
// from inside a tasklet; objects of one thread used from another are rejected (TWISTLET_CHECKS
// builds).
#include "core/core_test_support.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace twistlet;
using namespace twistlet_test;

namespace {

// Runs `fn` on a new thread and rethrows there what it threw here.
template <class F>
void on_thread(F&& fn) {
  std::exception_ptr error;
  std::thread th([&] {
    try {
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  th.join();
  if (error) std::rethrow_exception(error);
}

struct counts_destruction {
  std::atomic<int>* count;
  explicit counts_destruction(std::atomic<int>& c) : count(&c) {}
  counts_destruction(const counts_destruction&) = delete;
  counts_destruction& operator=(const counts_destruction&) = delete;
  ~counts_destruction() { ++*count; }
};

}  // namespace

TEST_CASE("each thread has its own scheduler and main tasklet", "[core][threads]") {
  const std::uint64_t here = getmain().id();
  std::uint64_t there = 0, there_current = 0;
  bool there_is_main = false;
  std::size_t there_runcount = 0;
  std::vector<int> log;
  on_thread([&] {
    there = getmain().id();
    there_current = getcurrent().id();
    there_is_main = getcurrent().is_main();
    // A scheduler of its own: tasklets spawned here do not show up in the other thread's ring.
    tasklet::spawn([&] { log.push_back(1); });
    there_runcount = getruncount();
    run();
  });
  CHECK(there != 0);
  CHECK(there != here);
  CHECK(there_current == there);
  CHECK(there_is_main);
  CHECK(there_runcount == 2);
  CHECK(log == std::vector<int>{1});
  CHECK(getmain().id() == here);
  CHECK(getruncount() == 1);
}

TEST_CASE("tasklets left blocked when their thread ends are killed and unwind", "[core][threads]") {
  std::atomic<int> destroyed{0};
  std::atomic<int> bodies_started{0};
  on_thread([&] {
    channel<int> ch;
    // Blocked in receive.
    tasklet::spawn([&] {
      ++bodies_started;
      counts_destruction guard(destroyed);
      ch.receive();
    });
    // Paused after starting; its handle goes at the end of this function, which only queues
    // its kill, so the scheduler's shutdown has to run it.
    tasklet paused = tasklet::spawn([&] {
      ++bodies_started;
      counts_destruction guard(destroyed);
      schedule_remove();
    });
    run();
    CHECK(ch.balance() == -1);
    CHECK(paused.paused());
    // Runnable, never started: its body must not run, but its function object is destroyed.
    auto owned = std::make_shared<counts_destruction>(destroyed);
    tasklet::spawn([owned, &bodies_started] { ++bodies_started; });
    owned.reset();
    CHECK(destroyed == 0);
  });
  CHECK(bodies_started == 2);
  CHECK(destroyed == 3);
}

TEST_CASE("a tasklet waiting in a nested run() when its thread ends is killed too", "[core][threads]") {
  std::atomic<int> destroyed{0};
  on_thread([&] {
    channel<int> to_main, never;
    tasklet::spawn([&] {
      counts_destruction guard(destroyed);
      tasklet::spawn([&] {
        to_main.send(1);  // wakes main, which then ends the thread
        never.receive();
      });
      run();  // this tasklet is the watchdog of a nested run() when the thread ends
    });
    CHECK(to_main.receive() == 1);
  });
  CHECK(destroyed == 1);
}

TEST_CASE("child: exit() from inside a tasklet", "[.child]") {
  tasklet::spawn([] {
    std::puts("exiting from a tasklet");  // buffered: shows only if exit() completes
    std::exit(7);
  });
  run();
}

TEST_CASE("exit() called inside a tasklet ends the process normally", "[core][threads]") {
  const child_outcome out = run_child_test("child: exit() from inside a tasklet");
  INFO("stderr: " << out.err);
  CHECK_FALSE(out.signaled);
  CHECK(out.exit_code == 7);
  CHECK(out.out.find("exiting from a tasklet") != std::string::npos);
}

TEST_CASE("a thread's scheduler can be created again after the thread's tasklets ended", "[core][threads]") {
  for (int round = 0; round < 3; ++round) {
    int sum = 0;
    on_thread([&] {
      channel<int> ch;
      tasklet::spawn([&] {
        for (int i = 1; i <= 4; ++i) ch.send(i);
      });
      for (int i = 0; i < 4; ++i) sum += ch.receive();
    });
    CHECK(sum == 10);
  }
}

TEST_CASE("threads run their schedulers at the same time without interfering", "[core][threads]") {
  constexpr int threads = 4;
  constexpr int rounds = 2000;
  std::vector<long> sums(threads, 0);
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k)
    pool.emplace_back([&sums, k] {
      channel<int> ch;
      tasklet::spawn([&] {
        for (int i = 0; i < rounds; ++i) ch.send(i);
      });
      long sum = 0;
      for (int i = 0; i < rounds; ++i) {
        sum += ch.receive();
        if (i % 7 == 0) schedule();
      }
      sums[k] = sum;
    });
  for (auto& t : pool) t.join();
  for (long s : sums) CHECK(s == long(rounds) * (rounds - 1) / 2);
}

#if defined(TWISTLET_CHECKS)
TEST_CASE("using a tasklet from another thread is a logic error", "[core][threads][checks]") {
  reaper r;
  tasklet t = r.make([] {});
  tasklet blocked;
  channel<int> ch;
  blocked = r.spawn([&] { ch.receive(); });
  run();
  on_thread([&] {
    CHECK_THROWS_AS(t.insert(), std::logic_error);
    CHECK_THROWS_AS(t.run(), std::logic_error);
    CHECK_THROWS_AS(t.remove(), std::logic_error);
    CHECK_THROWS_AS(t.kill(), std::logic_error);
    CHECK_THROWS_AS(t.throw_exception(std::make_exception_ptr(test_error(1))), std::logic_error);
    CHECK_THROWS_AS(blocked.kill(), std::logic_error);
  });
  CHECK(t.paused());
  CHECK(blocked.blocked());
  CHECK(ch.balance() == -1);
}

TEST_CASE("using a channel from another thread is a logic error", "[core][threads][checks]") {
  reaper r;
  channel<int> ch;
  r.spawn([&] { ch.receive(); });
  run();
  REQUIRE(ch.balance() == -1);
  on_thread([&] {
    CHECK_THROWS_AS(ch.send(1), std::logic_error);
    CHECK_THROWS_AS(ch.receive(), std::logic_error);
    CHECK_THROWS_AS(ch.send_exception(std::make_exception_ptr(test_error(1))), std::logic_error);
  });
  CHECK(ch.balance() == -1);
  ch.send(2);
  CHECK(ch.balance() == 0);
}
#endif
