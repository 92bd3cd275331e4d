// Shared pieces of the actor layer's tests.
#pragma once

#include <twistlet/actor.hpp>
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace actor_test {

using add_atom = caf::atom_constant<caf::atom("add")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using put_atom = caf::atom_constant<caf::atom("put")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

// Plain CAF actors are class-based here: CAF 0.17's function-based spawn without arguments
// binds a reference to a null pointer (init_fun_factory.hpp), which UBSan reports.

/// A plain event-based CAF actor: add two ints.
struct calculator : caf::event_based_actor {
  explicit calculator(caf::actor_config& cfg) : caf::event_based_actor(cfg) {
    set_default_handler(caf::drop);  // answer unmatched requests with an error, quietly
  }
  caf::behavior make_behavior() override {
    return {
        [](add_atom, int a, int b) { return a + b; },
    };
  }
};

/// A plain CAF actor that never answers requests for `ping`.
struct black_hole : caf::event_based_actor {
  using caf::event_based_actor::event_based_actor;
  caf::behavior make_behavior() override {
    return {
        [this](ping_atom) -> caf::response_promise { return make_response_promise(); },
    };
  }
};

/// An actor system with twistlet's error category and, optionally, the middleman.
struct system_holder {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  explicit system_holder(bool middleman = false);
};

/// An actor system plus a reactor and a hub on the calling (main) thread.
struct hub_fixture {
  system_holder holder;
  std::optional<twistlet::reactor> loop;
  std::optional<twistlet::actor::hub> hub;
  explicit hub_fixture(bool middleman = false, twistlet::actor::hub_options opts = {}) : holder(middleman) {
    loop.emplace();
    hub.emplace(*holder.sys, opts);
  }
  ~hub_fixture() {
    hub.reset();
    loop.reset();
  }
  caf::actor_system& sys() { return *holder.sys; }
};

/// A deferred that fires with the exit reason of `target`, seen by a tasklet actor of `h`
/// that monitors it.
inline twistlet::deferred<caf::error> exit_reason_of(twistlet::actor::hub& h, const caf::actor& target) {
  twistlet::deferred<caf::error> d;
  h.spawn(
      [d, target](twistlet::actor::tasklet_actor& self) mutable {
        self.monitor(target);
        self.receive([&](const caf::down_msg& m) { d.callback(m.reason); });
      },
      {.name = "watcher"});
  return d;
}

/// Whether `e` is the error_code::exception error of an exception with message `what`.
inline bool is_exception_error(const caf::error& e, const std::string& what) {
  if (e.category() != twistlet::actor::error_category ||
      e.code() != static_cast<std::uint8_t>(twistlet::actor::error_code::exception))
    return false;
  return e.context().match_elements<std::string, std::string>() && e.context().get_as<std::string>(1) == what;
}

/// Captures failures reported as unhandled for the lifetime of the object.
struct capture_unhandled {
  std::vector<std::string> messages;
  twistlet::unhandled_error_handler previous;
  capture_unhandled();
  ~capture_unhandled();
};

}  // namespace actor_test
