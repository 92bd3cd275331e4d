// The reactor: an event loop that runs in its own tasklet.
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;  // this thread's reactor
  r.call_later(2ms, [&] {
    std::printf("2 ms: second timer, stopping\n");
    r.stop();
  });
  r.call_later(1ms, [&] {
    std::printf("1 ms: first timer, in the reactor tasklet: %d\n", r.in_reactor_tasklet());
  });
  tasklet::spawn([&] { std::printf("a tasklet runs while the reactor runs: %d\n", r.running()); });

  std::printf("run()\n");
  r.run();  // sleeps in the kernel between timers; returns after stop()
  std::printf("run() returned\n");
}
