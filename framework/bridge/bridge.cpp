#include <twistlet/bridge.hpp>

namespace twistlet {
namespace detail {

namespace {
[[noreturn]] void throw_reactor_blocked(const char* what) {
  throw reactor_blocked_error(std::string(what) +
                              ": called in the reactor tasklet, which must never block (nothing would be left to "
                              "wake it); start a tasklet with deferred_tasklet() instead");
}
}  // namespace

void check_may_block(const char* what) {
  reactor* r = reactor::current();
  if (r && r->in_reactor_tasklet()) [[unlikely]]
    throw_reactor_blocked(what);
}

block_context prepare_block(const char* what) {
  tasklet_impl* self = current_tasklet();
  const reactor_role role = current_reactor_role(self);
  if (!role.r) return {self, nullptr};
  if (role.running) {
    if (role.in_reactor_tasklet) [[unlikely]]
      throw_reactor_blocked(what);
    return {self, nullptr};
  }
  return {self, is_main(self) ? role.r : nullptr};
}

void report_orphaned(const failure& f, bool cancelled_by_waiter) noexcept {
  // The waiter's own cancel() produces a cancelled_error nobody needs to hear about; any other
  // failure (including one a canceller chose) would otherwise vanish.
  if (cancelled_by_waiter && f.check<cancelled_error>()) return;
  report_unhandled_error(f);
}

void drive_reactor_until(reactor& r, const std::function<bool()>& done) { r.run_until(done); }

}  // namespace detail

void sleep(duration d) {
  reactor* r = reactor::current();
  if (!r) throw std::logic_error("sleep: this thread has no reactor");
  detail::check_may_block("sleep");
  block_on(defer_later(*r, d));
}

}  // namespace twistlet
