#include "actor/actor_test_support.hpp"

#include <caf/io/middleman.hpp>

namespace actor_test {

system_holder::system_holder(bool middleman) {
  twistlet::actor::configure(cfg);
  if (middleman) cfg.load<caf::io::middleman>();
  sys = std::make_unique<caf::actor_system>(cfg);
}

capture_unhandled::capture_unhandled() {
  previous = twistlet::set_unhandled_error_handler([this](const twistlet::failure& f) { messages.push_back(f.what()); });
}

capture_unhandled::~capture_unhandled() { twistlet::set_unhandled_error_handler(previous); }

}  // namespace actor_test
