// Hubs on several threads: actors on one, services on another, main asks both.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdio>
#include <thread>

namespace ta = twistlet::actor;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // [threads]
  ta::hub_thread left(sys);   // a thread with its own reactor and hub
  ta::hub_thread right(sys);
  caf::actor doubler = right.call([](ta::hub& h) {  // runs in a tasklet of `right`'s thread
                              return h.spawn_service([](int x) { return 2 * x; });
                            }).get();
  caf::actor summer = left.call([doubler](ta::hub& h) {
                             return h.spawn([doubler](ta::tasklet_actor& self) {
                               int sum = 0;
                               for (;;)
                                 self.receive([&](int x) {
                                   // a request from one hub's thread to the other's
                                   sum += twistlet::block_on(ta::request<int>(doubler, x));
                                   return sum;
                                 });
                             });
                           }).get();
  // [threads]
  // [main]
  twistlet::reactor loop;
  ta::hub hub(sys);
  int last = 0;
  for (int i = 1; i <= 4; ++i) last = twistlet::block_on(ta::request<int>(summer, i));
  std::printf("2 * (1 + 2 + 3 + 4) = %d\n", last);
  // [main]
}
