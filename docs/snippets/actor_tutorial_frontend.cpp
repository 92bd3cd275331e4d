// The shape of examples/kvdemo: connection tasklets in front, an actor on another thread behind.
#include <twistlet/actor.hpp>
#include <twistlet/net.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdio>
#include <map>
#include <string>

namespace ta = twistlet::actor;
namespace net = twistlet::net;
using twistlet::block_on;
using put_atom = caf::atom_constant<caf::atom("put")>;
using get_atom = caf::atom_constant<caf::atom("get")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  ta::hub_thread back(sys);  // the store lives on a thread of its own
  caf::actor store = back.call([](ta::hub& h) {
                           return h.spawn([](ta::tasklet_actor& self) {
                             std::map<std::string, std::string> data;
                             for (;;)
                               self.receive([&](put_atom, const std::string& k, const std::string& v) { data[k] = v; },
                                            [&](get_atom, const std::string& k) { return data[k]; });
                           });
                         }).get();
  twistlet::reactor loop;
  ta::hub front(sys);
  // [front]
  net::listener server = net::listen_tcp(loop, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                         [&](net::stream s) {  // "key=value" stores, "key" fetches
                                           for (;;) {
                                             std::string line = s.read_line();
                                             std::size_t eq = line.find('=');
                                             if (eq == std::string::npos) {
                                               s.write(block_on(ta::request<std::string>(store, get_atom::value, line)) + "\n");
                                             } else {
                                               block_on(ta::request<void>(store, put_atom::value, line.substr(0, eq),
                                                                          line.substr(eq + 1)));
                                               s.write("stored\n");
                                             }
                                           }
                                         });
  // [front]
  net::stream client = net::connect(loop, "127.0.0.1", server.port());
  for (const char* line : {"color=blue", "color", "size"}) {
    client.write(std::string(line) + "\n");
    std::printf("%-10s -> '%s'\n", line, client.read_line().c_str());
  }
}
