// A tasklet actor: sequential code with a mailbox.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include <cstdio>
#include <string>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;
using get_atom = caf::atom_constant<caf::atom("get")>;
using put_atom = caf::atom_constant<caf::atom("put")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);

  // [store]
  caf::actor store = hub.spawn(
      [](ta::tasklet_actor& self) {
        std::string value = "(empty)";
        for (;;) {
          self.receive([&](get_atom) { return value; },  // the return value is the response
                       [&](put_atom, std::string v) { value = std::move(v); });
        }
      },
      {.name = "store"});
  // [store]

  // [use]
  std::printf("%s\n", twistlet::block_on(ta::request<std::string>(store, get_atom::value)).c_str());
  twistlet::block_on(ta::request<void>(store, put_atom::value, "hello"));
  std::printf("%s\n", twistlet::block_on(ta::request<std::string>(store, get_atom::value)).c_str());
  // [use]

  // [timeout]
  twistlet::deferred<void> waited;
  caf::actor patient = hub.spawn([&](ta::tasklet_actor& self) {
    if (!self.receive_for(20ms, [](int) {})) std::printf("patient: no message within 20 ms\n");
    waited.callback();
    self.receive([](int x) { std::printf("patient: got %d\n", x); });
  });
  twistlet::block_on(waited);
  ta::send(patient, 7);
  // [timeout]

  // [monitor]
  // Another tasklet actor watches the store and reports how it ended.
  twistlet::deferred<caf::error> ended;
  hub.spawn([&](ta::tasklet_actor& self) {
    self.monitor(store);
    self.receive([&](const caf::down_msg& m) { ended.callback(m.reason); });
  });
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  caf::error reason = twistlet::block_on(ended);
  std::printf("store ended: %s\n", caf::to_string(static_cast<caf::exit_reason>(reason.code())).c_str());
  // [monitor]
}
