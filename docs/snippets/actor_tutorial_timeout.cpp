// A request can time out, and a tasklet killed while it waits takes its request with it.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstdio>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor slow = hub.spawn_service([](int ms) {
    twistlet::sleep(ms * 1ms);
    return ms;
  });
  // [timeout]
  try {
    twistlet::block_on(ta::request<int>(slow, 20ms, 500));  // at most 20 ms
  } catch (const twistlet::timeout_error&) {
    std::printf("timeout_error: no answer within 20 ms\n");
  }
  // [timeout]
  // [kill]
  twistlet::tasklet asker = twistlet::tasklet::spawn([&] { twistlet::block_on(ta::request<int>(slow, 500)); });
  twistlet::sleep(5ms);  // the asker sends its request and blocks
  std::printf("pending requests: %zu\n", hub.pending_requests());
  asker.kill();  // tasklet_exit in the asker; block_on cancels the request on its way out
  std::printf("pending requests: %zu\n", hub.pending_requests());
  // [kill]
}
