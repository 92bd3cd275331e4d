// Functions as tasklets: deferred_tasklet returns a deferred, blocking_tasklet a plain value.
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;

  // [deferred_tasklet]
  auto brew = deferred_tasklet([](const std::string& what, int minutes) {
    std::printf("brewing %s\n", what.c_str());
    sleep(minutes * 1ms);  // blocks this tasklet only
    std::printf("%s done\n", what.c_str());
    return what + " is ready";
  });
  // Each call starts a new tasklet at once; it runs until it first blocks.
  deferred<std::string> tea = brew("tea", 3);
  deferred<std::string> coffee = brew("coffee", 1);
  gather_results(std::vector{tea, coffee}).add_callback([&](const std::vector<std::string>& v) {
    std::printf("%s, %s\n", v[0].c_str(), v[1].c_str());
    r.stop();
  });
  r.run();
  // [deferred_tasklet]

  // [blocking_tasklet]
  auto add = blocking_tasklet([](int a, int b) {
    sleep(1ms);
    return a + b;
  });
  tasklet::spawn([&] {
    std::printf("1 + 2 = %d\n", add(1, 2));  // looks like a plain call, runs in its own tasklet
    r.stop();
  });
  r.run();
  // [blocking_tasklet]
}
