// Links against twistlet::actor and asks a plain CAF actor through a hub.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include <cstdio>

namespace {
struct doubler : caf::event_based_actor {
  explicit doubler(caf::actor_config& cfg) : caf::event_based_actor(cfg) {}
  caf::behavior make_behavior() override {
    return {[](int x) { return 2 * x; }};
  }
};
}  // namespace

int main() {
  caf::actor_system_config cfg;
  twistlet::actor::configure(cfg);
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  twistlet::actor::hub hub(sys);
  const int got = twistlet::block_on(twistlet::actor::request<int>(sys.spawn<doubler>(), 21));
  std::printf("actor consumer: %d\n", got);
  return got == 42 ? 0 : 1;
}
