// An idle reactor sleeps in the kernel: waiting costs no CPU time.
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  tasklet::spawn([&] {
    std::clock_t cpu = std::clock();
    sleep(100ms);  // no timer is due before then, and no other tasklet is runnable
    double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC;
    std::printf("slept 100 ms using %s CPU time\n", cpu_ms < 10 ? "almost no" : "a lot of");
    r.stop();
  });
  r.run();
}
