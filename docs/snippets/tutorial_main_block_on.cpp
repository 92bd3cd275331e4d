// block_on in main, outside reactor::run(): it runs the reactor until the result is there.
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  // [until]
  tasklet::spawn([] {
    sleep(1ms);
    std::printf("a tasklet ran meanwhile\n");
  });
  int v = block_on(defer_later(r, 3ms, [] { return 42; }));  // drives the reactor until it fires
  std::printf("main got %d; the reactor is running: %d\n", v, r.running());
  // [until]

  // [never]
  try {
    block_on(deferred<int>());  // nothing holds it: no timer, no tasklet, no thread can fire it
  } catch (const deadlock_error& e) {
    std::printf("deadlock_error: %s\n", e.what());
  }
  // [never]
}
