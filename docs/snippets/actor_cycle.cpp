// A request cycle that could never make progress is refused by name.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdio>

namespace ta = twistlet::actor;
using get_atom = caf::atom_constant<caf::atom("get")>;
using put_atom = caf::atom_constant<caf::atom("put")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  // [cycle]
  caf::actor ledger;
  // The audit service asks the ledger for its balance...
  caf::actor audit = hub.spawn_service({.name = "audit"}, [&](int amount) {
    return twistlet::block_on(ta::request<int>(ledger, get_atom::value)) + amount;
  });
  // ...while the ledger, in the middle of a put, waits for the audit.
  ledger = hub.spawn(
      [&](ta::tasklet_actor& self) {
        int balance = 100;
        for (;;) {
          try {
            self.receive([&](get_atom) { return balance; },
                         [&](put_atom, int amount) { return balance = twistlet::block_on(ta::request<int>(audit, amount)); });
          } catch (const ta::request_cycle_error&) {
            // answered with the error; the ledger goes on
          }
        }
      },
      {.name = "ledger"});
  try {
    twistlet::block_on(ta::request<int>(ledger, put_atom::value, 5));
  } catch (const ta::request_cycle_error& e) {
    std::printf("%s\n", e.what());
  }
  // [cycle]
}
