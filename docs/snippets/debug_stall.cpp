// The stall detector: a tasklet that computes for long without yielding holds up every other.
#include <twistlet/twistlet.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  std::atomic<bool> caught{false};
  reactor_options opts;
  opts.stall_threshold = 20ms;  // report anything that runs 20 ms without yielding
  opts.on_stall = [&](const stall_report& s) {  // runs on the monitor thread
    if (s.tasklet_name == "cruncher" && !caught.exchange(true)) std::printf("stall: 'cruncher' ran for 20 ms or more\n");
  };
  reactor r(opts);

  tasklet::spawn(
      [&] {
        unsigned long sum = 0;
        while (!caught) sum += 1;  // a long computation that never yields
        std::printf("cruncher done (sum > 0: %d)\n", sum > 0);
        r.stop();
      },
      {.name = "cruncher"});
  r.run();
}
