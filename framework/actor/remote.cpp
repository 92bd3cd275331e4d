// Remote actors through CAF's middleman. Both calls block inside CAF (handshakes over the
// network), so they run on the reactor's thread pool and come back as deferreds.
#include <caf/io/middleman.hpp>

#include "actor/actor_impl.hpp"

namespace twistlet::actor {

namespace {

caf::io::middleman& middleman_of(caf::actor_system& sys, const char* what) {
  if (!sys.has_middleman())
    throw std::logic_error(std::string("twistlet::actor::") + what +
                           ": the actor system has no middleman (call cfg.load<caf::io::middleman>())");
  return sys.middleman();
}

}  // namespace

deferred<std::uint16_t> publish(const caf::actor& whom, std::uint16_t port, std::string in, bool reuse) {
  detail::hub_impl& h = detail::current_hub("publish");
  caf::actor_system& sys = h.sys;
  return h.loop.defer_to_thread([&sys, whom, port, in = std::move(in), reuse]() -> std::uint16_t {
    caf::io::middleman& mm = middleman_of(sys, "publish");
    auto r = mm.publish(whom, port, in.empty() ? nullptr : in.c_str(), reuse);
    if (!r) throw actor_error("publish on port " + std::to_string(port) + " failed: " + sys.render(r.error()), r.error());
    return *r;
  });
}

deferred<caf::actor> remote_actor(std::string host, std::uint16_t port) {
  detail::hub_impl& h = detail::current_hub("remote_actor");
  caf::actor_system& sys = h.sys;
  return h.loop.defer_to_thread([&sys, host = std::move(host), port]() -> caf::actor {
    caf::io::middleman& mm = middleman_of(sys, "remote_actor");
    auto r = mm.remote_actor(host, port);
    if (!r)
      throw actor_error("remote_actor " + host + ":" + std::to_string(port) + " failed: " + sys.render(r.error()),
                        r.error());
    return std::move(*r);
  });
}

}  // namespace twistlet::actor
