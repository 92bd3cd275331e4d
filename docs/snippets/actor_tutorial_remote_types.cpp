// A type of your own crosses the network once both sides know how to serialize it.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdio>
#include <string>

namespace ta = twistlet::actor;
using twistlet::block_on;

// [type]
struct order {
  std::string item;
  int quantity = 0;
};
template <class Inspector>  // CAF's way to serialize (and print) a type: list its fields
typename Inspector::result_type inspect(Inspector& f, order& x) {
  return f(caf::meta::type_name("order"), x.item, x.quantity);
}

void configure(caf::actor_system_config& cfg) {  // the same on every node
  cfg.load<caf::io::middleman>();
  cfg.add_message_type<order>("order");
}
// [type]

int main() {
  caf::actor_system_config server_cfg;  // the server "process"
  configure(server_cfg);
  caf::actor_system server_sys{server_cfg};
  ta::hub_thread server(server_sys);
  std::uint16_t port = server.call([](ta::hub& h) {
                                    caf::actor shop = h.spawn_service([](const order& o) { return 3 * o.quantity; });
                                    return block_on(ta::publish(shop, 0, "127.0.0.1"));
                                  }).get();

  caf::actor_system_config client_cfg;  // the client "process"
  configure(client_cfg);
  caf::actor_system client_sys{client_cfg};
  twistlet::reactor loop;
  ta::hub hub(client_sys);
  caf::actor shop = block_on(ta::remote_actor("127.0.0.1", port));
  std::printf("4 pears cost %d\n", block_on(ta::request<int>(shop, order{"pear", 4})));
}
