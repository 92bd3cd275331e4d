// Messages wait in the mailbox until the actor asks for them: receive() is selective.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;
using done_atom = caf::atom_constant<caf::atom("done")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor worker = hub.spawn([](ta::tasklet_actor& self) {
    // Only a string opens the door; the jobs that came first stay in the mailbox, in order.
    self.receive([&](const std::string& word) { std::printf("opened with '%s'\n", word.c_str()); });
    std::printf("waiting in the mailbox: %zu\n", self.mailbox_size());
    for (bool done = false; !done;)
      self.receive([](int job) {
                     twistlet::sleep(1ms);  // a handler may block; new messages queue meanwhile
                     std::printf("job %d\n", job);
                   },
                   [&](done_atom) { done = true; });
  });
  for (int job : {1, 2}) ta::send(worker, job);
  ta::send(worker, std::string("sesame"));
  ta::send(worker, 3);
  twistlet::block_on(ta::request<void>(worker, done_atom::value));
}
