// When the process on the other side goes away, requests to its actors fail; nothing hangs.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include <chrono>
#include <cstdio>
#include <memory>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;
using twistlet::block_on;

int main() {
  // The server side: its own actor system, as if in another process.
  caf::actor_system_config server_cfg;
  server_cfg.load<caf::io::middleman>();
  auto server_sys = std::make_unique<caf::actor_system>(server_cfg);
  auto server = std::make_unique<ta::hub_thread>(*server_sys);
  std::uint16_t port = server->call([](ta::hub& h) {
                                     caf::actor slow = h.spawn_service([](int ms) {
                                       twistlet::sleep(ms * 1ms);
                                       return ms;
                                     });
                                     return block_on(ta::publish(slow, 0, "127.0.0.1"));
                                   }).get();

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor slow = block_on(ta::remote_actor("127.0.0.1", port));
  std::printf("answer: %d\n", block_on(ta::request<int>(slow, 1)));
  // [down]
  twistlet::deferred<int> pending = ta::request<int>(slow, 10'000);  // ten seconds of work
  twistlet::sleep(20ms);                                             // it is under way over there...
  server.reset();                                                    // ...when the server "process" ends
  server_sys.reset();
  try {
    block_on(pending);
  } catch (const ta::receiver_down_error&) {
    std::printf("the pending request failed: receiver_down_error\n");
  }
  try {
    block_on(ta::request<int>(slow, 1));
  } catch (const ta::receiver_down_error&) {
    std::printf("so does a new one, at once\n");
  }
  // [down]
}
