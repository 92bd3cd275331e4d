// Remote actors: one actor system publishes a service, another reaches it over loopback.
// (Two systems in one process stand for two processes; examples/remote uses two.)
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include <cstdio>
#include <string>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;

int main() {
  // [server]
  caf::actor_system_config server_cfg;
  server_cfg.load<caf::io::middleman>();
  caf::actor_system server_sys{server_cfg};
  ta::hub_thread server(server_sys);
  std::uint16_t port = server.call([](ta::hub& h) {
                                      caf::actor greeter = h.spawn_service(
                                          [](const std::string& name) { return "hello, " + name; });
                                      // port 0: any free port; the deferred fires with the one used
                                      return twistlet::block_on(ta::publish(greeter, 0, "127.0.0.1"));
                                    }).get();
  // [server]

  // [client]
  caf::actor_system_config client_cfg;
  client_cfg.load<caf::io::middleman>();
  caf::actor_system client_sys{client_cfg};
  twistlet::reactor loop;
  ta::hub hub(client_sys);
  caf::actor greeter = twistlet::block_on(ta::remote_actor("127.0.0.1", port));
  std::printf("%s\n", twistlet::block_on(ta::request<std::string>(greeter, 5s, std::string("world"))).c_str());
  // [client]
}
