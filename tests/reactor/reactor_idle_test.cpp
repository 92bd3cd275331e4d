// An idle reactor sleeps in the kernel (SEMANTICS §5.3, §7.7): no periodic polling, so
// waiting costs neither CPU nor wake-ups. The bounds are on CPU time and on the number of
// times the thread went to sleep, never on elapsed time, and generous enough for a busy
// machine; a 10 kHz poll (the 2008 design) would exceed both by orders of magnitude.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <chrono>

#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include "reactor/reactor_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;
using namespace std::chrono_literals;

TEST_CASE("an idle reactor waiting one second on a timer uses almost no CPU") {
  reactor r;
  bool woke = false;
  tasklet::spawn([&] {
    twistlet::sleep(1s);
    woke = true;
    r.stop();
  });
  const cpu_usage process_before = cpu_usage::of(RUSAGE_SELF);
  const cpu_usage thread_before = cpu_usage::of(RUSAGE_THREAD);
  r.run();
  const cpu_usage process = cpu_usage::of(RUSAGE_SELF) - process_before;
  const cpu_usage thread = cpu_usage::of(RUSAGE_THREAD) - thread_before;
  REQUIRE(woke);
  INFO("CPU " << process.cpu.count() << " us, voluntary context switches " << thread.voluntary_switches);
  CHECK(process.cpu < 50ms);
  // One sleep until the timer, plus a few for page faults and the like.
  CHECK(thread.voluntary_switches < 50);
}
