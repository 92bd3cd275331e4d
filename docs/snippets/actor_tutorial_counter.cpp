// A tasklet actor: a loop that receives messages, with its state in local variables.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdio>

namespace ta = twistlet::actor;
using add_atom = caf::atom_constant<caf::atom("add")>;
using get_atom = caf::atom_constant<caf::atom("get")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};  // CAF's runtime: its scheduler threads, the actor registry
  twistlet::reactor loop;      // this thread's event loop
  ta::hub hub(sys);            // CAF messages for this thread's actors arrive in `loop`

  caf::actor counter = hub.spawn(
      [](ta::tasklet_actor& self) {
        int total = 0;  // the actor's state: a local variable
        for (;;)
          self.receive([&](add_atom, int n) { total += n; },  // a plain message: no answer
                       [&](get_atom) { return total; });      // a request: the return value answers
      },
      {.name = "counter"});

  for (int n : {1, 2, 3}) ta::send(counter, add_atom::value, n);
  int total = twistlet::block_on(ta::request<int>(counter, get_atom::value));
  std::printf("total: %d\n", total);
}
