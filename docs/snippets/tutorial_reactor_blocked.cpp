// The reactor tasklet must never block: nothing would be left to wake it.
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  // [wrong]
  r.call_later(0ms, [&] {  // timer functions run in the reactor tasklet
    try {
      block_on(defer_later(r, 1ms));  // would wait for a timer that only this loop can run
    } catch (const reactor_blocked_error& e) {
      std::printf("reactor_blocked_error: %s\n", e.what());
    }
  });
  // [wrong]

  // [right]
  r.call_later(0ms, [&] {
    tasklet::spawn([&] {  // a tasklet of its own may block as it likes
      block_on(defer_later(r, 1ms));
      std::printf("the tasklet waited 1 ms\n");
      r.stop();
    });
  });
  // [right]
  r.run();
}
