// Time as a value: manual_clock moves only when told, so timer code is tested without waiting.
#include <twistlet/deferred.hpp>
#include <twistlet/time.hpp>

#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  manual_clock clock;
  auto t = [&] { return static_cast<long long>((clock.now() - time_point{}) / 1ms); };

  // [later]
  clock.call_later(30ms, [&] { std::printf("%3lld ms: call_later\n", t()); });
  defer_later(clock, 10ms, [] { return 42; }).add_callback([&](int v) {
    std::printf("%3lld ms: defer_later gave %d\n", t(), v);
  });
  // [later]

  // [timeout]
  deferred<int> slow;  // nobody will ever fire it
  slow.add_timeout(20ms, clock).add_errback([&](const failure& f) {
    std::printf("%3lld ms: %s\n", t(), f.what().c_str());
    return -1;
  });
  // [timeout]

  // [loop]
  int ticks = 0;
  looping_call heartbeat(clock, [&] {
    std::printf("%3lld ms: tick %d\n", t(), ++ticks);
    if (ticks == 3) heartbeat.stop();
  });
  heartbeat.start(15ms).add_callback([&] { std::printf("%3lld ms: heartbeat stopped\n", t()); });
  // [loop]

  for (int step = 0; step < 10; ++step) clock.advance(5ms);  // 50 ms pass, 5 ms at a time
}
