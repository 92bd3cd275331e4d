// What debug listings say about tasklets of the actor layer.
#include "actor/actor_test_support.hpp"

#include <twistlet/debug.hpp>

#include <algorithm>
#include <string>

namespace ta = twistlet::actor;
using namespace actor_test;
using twistlet::block_on;

namespace {
std::string own_listing_entry() {
  const std::uint64_t me = twistlet::getcurrent().id();
  for (const auto& t : twistlet::debug::list_tasklets())
    if (t.id == me) return twistlet::debug::describe(t);
  return {};
}
}  // namespace

TEST_CASE("a service handler's tasklet is listed with the request it serves") {
  hub_fixture f;
  caf::actor svc = f.hub->spawn_service({.name = "inspect"}, [](int) { return own_listing_entry(); });
  const std::string entry = block_on(ta::request<std::string>(svc, 1));
  INFO(entry);
  CHECK(entry.find("'inspect': running [serving a request of actor ") != std::string::npos);
  CHECK(entry.find(" in service 'inspect' (actor " + std::to_string(svc.id()) + ", handler 1)]") != std::string::npos);
}

TEST_CASE("a tasklet actor waiting in receive() is listed with its mailbox") {
  hub_fixture f;
  std::uint64_t id = 0;
  caf::actor a = f.hub->spawn(
      [&](ta::tasklet_actor& self) {
        id = twistlet::getcurrent().id();
        self.receive([](int) {});
      },
      {.name = "listener"});
  twistlet::schedule();
  std::string waits;
  for (const auto& t : twistlet::debug::list_tasklets())
    if (t.id == id) waits = t.waits_on;
  INFO(waits);
  CHECK(waits.find("the mailbox of tasklet actor 'listener' (actor " + std::to_string(a.id()) + ", 0 unmatched messages)") !=
        std::string::npos);
  caf::anon_send(a, 1);
  block_on(exit_reason_of(*f.hub, a));
}
