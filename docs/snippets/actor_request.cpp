// A hub on the main thread; main asks a plain CAF actor with block_on(request(...)).
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <cstdio>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;
using add_atom = caf::atom_constant<caf::atom("add")>;

// A plain CAF actor (class-based: see "Sanitizers" in docs/actors.md).
struct calculator : caf::event_based_actor {
  explicit calculator(caf::actor_config& cfg) : caf::event_based_actor(cfg) {
    set_default_handler(caf::drop);  // answer what no handler takes with an error, quietly
  }
  caf::behavior make_behavior() override {
    return {[](add_atom, int a, int b) { return a + b; }};
  }
};

// [setup]
int main() {
  caf::actor_system_config cfg;
  ta::configure(cfg);  // optional: readable twistlet errors in CAF's logs
  caf::actor_system sys{cfg};
  twistlet::reactor loop;  // this thread's event loop
  ta::hub hub(sys);        // CAF messages for this thread's actors arrive in `loop`
  // [setup]

  // [request]
  caf::actor calc = sys.spawn<calculator>();
  // block_on in main runs the reactor until the response is there.
  int sum = twistlet::block_on(ta::request<int>(calc, add_atom::value, 1, 2));
  std::printf("1 + 2 = %d\n", sum);
  // [request]

  // [failures]
  try {
    twistlet::block_on(ta::request<int>(calc, 100ms, "not a sum"));
  } catch (const ta::remote_error& e) {
    std::printf("remote_error: %s\n", e.what());
  }
  caf::anon_send_exit(calc, caf::exit_reason::kill);
  try {
    // Wait until the actor is gone: requests to it then fail at once.
    for (;;) {
      twistlet::block_on(ta::request<int>(calc, 100ms, add_atom::value, 1, 1));
      twistlet::sleep(1ms);
    }
  } catch (const ta::receiver_down_error& e) {
    std::printf("receiver_down_error: %s\n", e.what());
  }
  // [failures]
}
