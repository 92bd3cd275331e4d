#include <twistlet/tasklet.hpp>

#include "core/scheduler.hpp"

namespace twistlet {
namespace {

detail::tasklet_impl* checked(detail::tasklet_impl* t, const char* op) {
  if (!t) throw std::logic_error(std::string("tasklet::") + op + ": empty tasklet handle");
#if defined(TWISTLET_CHECKS)
  if (t->sched != detail::scheduler::peek()) [[unlikely]]
    throw std::logic_error(std::string("tasklet::") + op + ": tasklet " + std::to_string(t->id) +
                           " used from a thread other than its own");
#endif
  return t;
}

const std::string& empty_name() {
  static const std::string empty;
  return empty;
}

}  // namespace

void tasklet::insert() { checked(impl_, "insert")->sched->insert(impl_); }

void tasklet::remove() { checked(impl_, "remove")->sched->remove(impl_); }

void tasklet::run() { checked(impl_, "run")->sched->run_tasklet(impl_); }

void tasklet::kill(bool pending) {
  if (!checked(impl_, "kill") || impl_->state == detail::tstate::dead) return;
  impl_->sched->throw_into(impl_, std::make_exception_ptr(tasklet_exit{}), pending);
}

void tasklet::throw_exception(std::exception_ptr e, bool pending) {
  checked(impl_, "throw_exception")->sched->throw_into(impl_, std::move(e), pending);
}

bool tasklet::alive() const noexcept { return impl_ && impl_->state != detail::tstate::dead; }

bool tasklet::blocked() const noexcept { return impl_ && impl_->state == detail::tstate::blocked; }

bool tasklet::scheduled() const noexcept {
  return impl_ && (impl_->state == detail::tstate::runnable || impl_->state == detail::tstate::blocked);
}

bool tasklet::paused() const noexcept { return impl_ && impl_->state == detail::tstate::paused; }

bool tasklet::is_main() const noexcept { return impl_ && impl_->main; }

bool tasklet::is_current() const noexcept {
  return impl_ && impl_->state == detail::tstate::runnable && detail::scheduler::peek() == impl_->sched &&
         impl_->sched->current() == impl_;
}

std::uint64_t tasklet::id() const noexcept { return impl_ ? impl_->id : 0; }

const std::string& tasklet::name() const noexcept { return impl_ ? impl_->name : empty_name(); }

tasklet getcurrent() { return tasklet::from_impl(detail::scheduler::get().current()); }

tasklet getmain() { return tasklet::from_impl(detail::scheduler::get().main_tasklet()); }

std::size_t getruncount() { return detail::scheduler::get().runcount(); }

void schedule() { detail::scheduler::get().schedule(); }

void schedule_remove() { detail::scheduler::get().schedule_remove(); }

void run() { detail::scheduler::get().run_watchdog(); }

}  // namespace twistlet
