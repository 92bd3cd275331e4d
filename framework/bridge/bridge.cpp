#include <twistlet/bridge.hpp>

#include <cstdio>
#include <string>

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

namespace {

// A duration as people read it: "250 ms", "1.5 s", "40 us".
std::string readable(duration d) {
  const double ns = static_cast<double>(d.count());
  const double a = ns < 0 ? -ns : ns;
  char buf[48];
  if (a >= 1e9)
    std::snprintf(buf, sizeof buf, "%g s", ns / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%g ms", ns / 1e6);
  else if (a >= 1e3)
    std::snprintf(buf, sizeof buf, "%g us", ns / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld ns", static_cast<long long>(d.count()));
  return buf;
}

// The note a sleeper carries, formatted only when a listing asks (on the sleeper's thread,
// where reading the clock is allowed).
struct sleep_note : detail::wait_note {
  reactor_time* clock;
  time_point due;
};

std::string format_sleep(const detail::wait_note& n) {
  const auto& s = static_cast<const sleep_note&>(n);
  const duration left = s.due - s.clock->now();
  return left >= duration::zero() ? "sleep, due in " + readable(left) : "sleep, due " + readable(-left) + " ago";
}

void sleep_on(reactor_time& clock, duration d) {
  sleep_note note;
  note.format = format_sleep;
  note.clock = &clock;
  note.due = clock.now() + d;
  detail::wait_note_scope scope(note);
  block_on(defer_later(clock, d));
}

}  // namespace

void sleep(duration d) {
  reactor* r = reactor::current();
  if (!r) throw std::logic_error("sleep: this thread has no reactor");
  detail::check_may_block("sleep");
  sleep_on(*r, d);
}

void sleep(reactor_time& clock, duration d) {
  detail::check_may_block("sleep");
  sleep_on(clock, d);
}

}  // namespace twistlet
