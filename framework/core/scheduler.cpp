#include "core/scheduler.hpp"

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <sstream>
#include <thread>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace bctx = boost::context::detail;

namespace twistlet::detail {

scheduler_hooks scheduler::hooks;
constinit thread_local scheduler* t_sched = nullptr;

namespace {

// The owner object only exists to destroy the scheduler at thread exit; t_sched itself is a
// plain pointer so that the hot path is one TLS load.
struct scheduler_owner {
  ~scheduler_owner() {
    scheduler* s = t_sched;
    if (s) {
      delete s;
      t_sched = nullptr;
    }
  }
};
thread_local scheduler_owner t_owner;
thread_local char t_owner_token;
std::atomic<std::uint64_t> g_next_id{1};

void tasklet_main(bctx::transfer_t transfer) noexcept;

// Runs on the resumed tasklet's stack and returns into it (see jump()).
bctx::transfer_t land(bctx::transfer_t t) noexcept { return t; }

bool is_exit_exception(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const tasklet_exit&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string label(const tasklet_impl* t) { return tasklet_label(t); }

// ---- the registry ---------------------------------------------------------------------------

struct registry_state {
  std::mutex mutex;
  std::vector<scheduler*> schedulers;
};
// Never destroyed: threads may still end (and unregister) during static destruction.
registry_state& registry() {
  static registry_state* r = new registry_state;
  return *r;
}
std::atomic<std::uint64_t> g_next_serial{1};

}  // namespace

// What a capture request and its answer pass through; one per thread, in thread-local storage
// so that the signal handler reaches it without any lookup.
struct capture_slot {
  static constexpr int idle = 0, requested = 1, filling = 2, done = 3;
  std::atomic<int> state{idle};
  // Set while the thread's scheduler is fully alive; the handler reads it on its own thread.
  std::atomic<scheduler*> sched{nullptr};
  thread_capture data;
};

namespace {
constinit thread_local capture_slot t_capture;
}  // namespace

std::uint64_t next_tasklet_id() noexcept { return g_next_id.fetch_add(1, std::memory_order_relaxed); }

std::string tasklet_label(const tasklet_impl* t) {
  if (t->main) return "the main tasklet (" + std::to_string(t->id) + ")";
  std::string s = "tasklet " + std::to_string(t->id);
  if (!t->name.empty()) s += " '" + t->name + "'";
  return s;
}

std::string note_text(const wait_note* n) {
  if (!n) return {};
  if (n->text) return n->text;
  if (n->format) return n->format(*n);
  return {};
}

std::string describe_wait(const tasklet_impl* t) {
  std::string s;
  if (t->state == tstate::blocked && t->waiting_on) s = t->waiting_on->describe_waiter(t);
  if (std::string note = note_text(t->note); !note.empty()) {
    if (!s.empty()) s += ' ';
    s += '[';
    s += note;
    s += ']';
  }
  return s;
}

std::string wait_target::describe_waiter(const tasklet_impl*) const { return describe(); }

std::string wait_target::deadlock_message(const tasklet_impl* t) const {
  return "deadlock: the last other tasklet ended while " + label(t) + " waits on " + describe_wait(t);
}

// ---- scheduler lifetime ---------------------------------------------------------------------

scheduler& scheduler::create_for_thread() {
  (void)&t_owner;  // odr-use so the owner is constructed and destroys the scheduler at exit
  t_sched = new scheduler();
  return *t_sched;
}

scheduler::scheduler()
    : thread_(::pthread_self()),
      tid_(static_cast<pid_t>(::syscall(SYS_gettid))),
      serial_(g_next_serial.fetch_add(1, std::memory_order_relaxed)),
      slot_(&t_capture) {
  eh_globals_ = reinterpret_cast<eh_state*>(abi::__cxa_get_globals());
  main_ = new tasklet_impl;
  main_->sched = this;
  main_->main = true;
  main_->started = true;
  main_->refs = 1;
  main_->id = next_tasklet_id();
  main_->name = "main";
  main_->state = tstate::runnable;
#if defined(__SANITIZE_THREAD__)
  main_->tsan_fiber = __tsan_get_current_fiber();
#endif
  register_live(main_);
  link_sole(main_);
  current_ = main_;
  install_overflow_handler();
  {
    registry_state& r = registry();
    std::lock_guard lock(r.mutex);
    r.schedulers.push_back(this);
  }
  t_capture.sched.store(this, std::memory_order_relaxed);
}

scheduler::~scheduler() {
  // First of all: monitors may no longer reach this scheduler, nor its thread's capture
  // handler look into it.
  t_capture.sched.store(nullptr, std::memory_order_relaxed);
  {
    registry_state& r = registry();
    std::lock_guard lock(r.mutex);
    r.schedulers.erase(std::find(r.schedulers.begin(), r.schedulers.end(), this));
  }
  if (current_ != main_) {
    // Destroyed on a tasklet's stack: exit() was called inside a tasklet, and the rest of the
    // process's shutdown still runs on that stack. Like main's frames under exit(), every
    // tasklet is abandoned as it is; their stacks must stay mapped.
    stacks_.abandon();
    remove_overflow_handler_stack();
    return;
  }
  kill_all_at_exit();
  unregister_live(main_);
  main_->state = tstate::dead;
  if (--main_->refs == 0) delete main_;
  for (tasklet_impl* t : spare_) ::operator delete(static_cast<void*>(t));
  remove_overflow_handler_stack();
}

void scheduler::kill_all_at_exit() noexcept {
  // Tasklets still alive when their thread ends are killed so that their stacks unwind and
  // what they own is released (Stackless does the same). One that survives its kill is leaked.
  for (int round = 0; round < 3; ++round) {
    std::vector<tasklet> victims;
    // A tasklet waiting in a nested run() is a victim too: the kill ends its run() with
    // tasklet_exit like any other suspension point.
    for (tasklet_impl* t = all_head_; t; t = t->all_next)
      if (t != main_ && t->state != tstate::dead) victims.push_back(tasklet::from_impl(t));
    if (victims.empty()) return;
    for (auto& v : victims) {
      try {
        v.kill();
      } catch (...) {
        std::fputs("twistlet: an exception escaped a tasklet killed at thread exit\n", stderr);
      }
    }
    while (runcount_ > 1) {
      try {
        run_watchdog();
      } catch (...) {
        std::fputs("twistlet: an exception escaped a tasklet killed at thread exit\n", stderr);
      }
    }
  }
}

void scheduler::register_live(tasklet_impl* t) noexcept {
  t->all_prev = nullptr;
  t->all_next = all_head_;
  if (all_head_) all_head_->all_prev = t;
  all_head_ = t;
  if (hooks.on_create) hooks.on_create(t);
}

void scheduler::unregister_live(tasklet_impl* t) noexcept {
  if (t->all_prev)
    t->all_prev->all_next = t->all_next;
  else if (all_head_ == t)
    all_head_ = t->all_next;
  if (t->all_next) t->all_next->all_prev = t->all_prev;
  t->all_next = t->all_prev = nullptr;
}

// ---- creation and destruction ---------------------------------------------------------------

namespace {
// Sanitizers must see every control block's real lifetime.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::size_t spare_limit = 0;
#else
constexpr std::size_t spare_limit = 256;
#endif
}  // namespace

tasklet_impl* scheduler::new_impl() {
  if (spare_.empty()) return new tasklet_impl;
  tasklet_impl* t = spare_.back();
  spare_.pop_back();
  return ::new (static_cast<void*>(t)) tasklet_impl;
}

// Only for a control block no handle refers to. Its memory came from `new tasklet_impl`, so a
// recycled block may still end in a plain delete (in release()).
void scheduler::free_impl(tasklet_impl* t) noexcept {
  if (spare_.size() >= spare_limit) {
    delete t;
    return;
  }
  t->~tasklet_impl();
  spare_.push_back(t);
}

tasklet_impl* scheduler::create(std::size_t fn_size, std::size_t fn_align, tasklet_options&& opts, void** storage) {
  tasklet_impl* t = new_impl();
  try {
    t->stack = stacks_.allocate(opts.stack_size);
  } catch (...) {
    free_impl(t);
    throw;
  }
  t->sched = this;
  t->id = next_tasklet_id();
  t->name = std::move(opts.name);
  t->created_at = opts.created_at;
  t->refs = 2;  // the caller's handle and the scheduler's ownership while alive
  char* top = t->stack.base + t->stack.size;
  // Small functions live at the top of the stack: no extra allocation, and the page is one
  // the tasklet touches anyway.
  if (fn_size <= t->stack.size / 16 && fn_align <= 64) {
    std::uintptr_t p = reinterpret_cast<std::uintptr_t>(top) - fn_size;
    p &= ~(std::uintptr_t(std::max<std::size_t>(fn_align, 16)) - 1);
    top = reinterpret_cast<char*>(p);
    *storage = top;
  } else {
    try {
      *storage = ::operator new(fn_size, std::align_val_t(fn_align));
    } catch (...) {
      stacks_.release(t->stack);
      free_impl(t);
      throw;
    }
    t->heap_fn = true;
    t->fn_align = static_cast<std::uint32_t>(fn_align);
  }
  top = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(top) & ~std::uintptr_t(63));
  t->context = bctx::make_fcontext(top, static_cast<std::size_t>(top - t->stack.base), tasklet_main);
#if defined(__SANITIZE_ADDRESS__)
  t->asan_bottom = t->stack.base;
  t->asan_size = t->stack.size;
#endif
#if defined(__SANITIZE_THREAD__)
  t->tsan_fiber = __tsan_create_fiber(0);
#endif
  t->state = tstate::paused;
  register_live(t);
  return t;
}

void scheduler::destroy_entry(tasklet_impl* t) noexcept {
  if (t->entry.destroy) t->entry.destroy(t->entry.fn);
  if (t->heap_fn) ::operator delete(t->entry.fn, std::align_val_t(t->fn_align));
  t->entry = tasklet_entry{};
  t->heap_fn = false;
}

void scheduler::discard(tasklet_impl* t) noexcept {
  destroy_entry(t);
  t->state = tstate::dead;
  unregister_live(t);
  if (hooks.on_finish) hooks.on_finish(t);
  stacks_.release(t->stack);
#if defined(__SANITIZE_THREAD__)
  __tsan_destroy_fiber(t->tsan_fiber);
#endif
  if (--t->refs == 0) free_impl(t);
}

void scheduler::reap_unreachable(tasklet_impl* t) noexcept {
  if (!t->started) {
    discard(t);
    return;
  }
  // A started tasklet has frames to unwind: kill it when the scheduler next reaches it. No
  // switch here, as we are inside a handle's destructor.
  try {
    throw_into(t, std::make_exception_ptr(tasklet_exit{}), true);
  } catch (...) {
  }
}

// ---- ring bookkeeping -----------------------------------------------------------------------

tasklet_impl* scheduler::pop_watchdog() noexcept {
  if (watchdogs_.empty()) return nullptr;
  tasklet_impl* w = watchdogs_.back();
  watchdogs_.pop_back();
  w->watchdog = false;
  return w;
}

void scheduler::forget_watchdog(tasklet_impl* t) noexcept {
  if (!t->watchdog) return;
  watchdogs_.erase(std::find(watchdogs_.begin(), watchdogs_.end(), t));
  t->watchdog = false;
}

void scheduler::detach_from_wait(tasklet_impl* t) noexcept {
  if (t->state != tstate::blocked) return;
  t->waiting_on->abandon(t);
  t->waiting_on = nullptr;
  t->slot = nullptr;
  t->state = tstate::paused;
}

// ---- switching ------------------------------------------------------------------------------

inline void scheduler::check_stack(tasklet_impl* t) noexcept {
  if (t->stack.guard_type == guard_kind::canary && !t->main && !stack_pool::canary_intact(t->stack)) [[unlikely]]
    report_stack_overflow(t->id, t->name.data(), t->name.size());
}

inline void scheduler::resumed(void* from_context, tasklet_impl* from) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(current_->asan_fake_stack, &bottom, &size);
  if (!from->asan_bottom) {
    from->asan_bottom = bottom;
    from->asan_size = size;
  }
#endif
  if (from->state != tstate::dead) [[likely]] {
    from->context = from_context;
    return;
  }
  // The tasklet we left has ended; now that nobody runs on its stack, the stack can go.
  stacks_.release(from->stack);
#if defined(__SANITIZE_THREAD__)
  __tsan_destroy_fiber(from->tsan_fiber);
#endif
  if (--from->refs == 0) free_impl(from);
}

// A tasklet that has started is resumed with ontop_fcontext(), which runs land() on its stack;
// land()'s return takes the resumed tasklet back to where it suspended, which is one of the
// two calls below, as the return address on top of the CPU's return stack (pushed by the
// call that suspends the current tasklet) says. So the return stack stays aligned, and the
// returns that follow a switch are predicted whenever the two tasklets came through the same
// code. jump_fcontext() resumes with an indirect jump instead and leaves one stale return
// address per switch, which made every return after a switch mispredicted: on the machines
// measured, that cost more than the switch itself. A fresh tasklet has no return address to
// return to, so it is entered with jump_fcontext().
void scheduler::jump(tasklet_impl* to) noexcept {
  tasklet_impl* self = current_;
  check_stack(self);
  note_switch(to);
  current_ = to;
  self->eh = *eh_globals_;
  *eh_globals_ = to->eh;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(self->state == tstate::dead ? nullptr : &self->asan_fake_stack, to->asan_bottom,
                                 to->asan_size);
#endif
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  bctx::transfer_t back;
  if (to->started) [[likely]]
    back = bctx::ontop_fcontext(to->context, self, land);
  else
    back = bctx::jump_fcontext(to->context, self);
  resumed(back.fctx, static_cast<tasklet_impl*>(back.data));
}

void scheduler::raise_pending(tasklet_impl* self) {
  std::exception_ptr e = std::move(self->pending);
  self->pending = nullptr;
  std::rethrow_exception(e);
}

void scheduler::leave_ring_to_watchdog(tasklet_impl* self) {
  // The ring empties: control returns to the innermost run() (ensure_can_block() made sure
  // there is one).
  tasklet_impl* w = pop_watchdog();
  unlink(self);
  link_sole(w);
  switch_to(w);
}

namespace {
void tasklet_main(bctx::transfer_t transfer) noexcept {
  scheduler& s = *t_sched;
  s.resumed(transfer.fctx, static_cast<tasklet_impl*>(transfer.data));
  tasklet_impl* self = s.current();
  self->started = true;
  std::exception_ptr escaped;
  try {
    if (self->pending) {
      std::exception_ptr e = std::move(self->pending);
      self->pending = nullptr;
      std::rethrow_exception(e);
    }
    self->entry.invoke(self->entry.fn);
  } catch (const tasklet_exit&) {
  } catch (...) {
    escaped = std::current_exception();
  }
  s.finish_current(std::move(escaped));
}
}  // namespace

void scheduler::finish_current(std::exception_ptr escaped) noexcept {
  tasklet_impl* self = current_;
  destroy_entry(self);  // while the stack that may hold the function is still ours
  tasklet_impl* next = self->next != self ? self->next : nullptr;
  unlink(self);
  self->state = tstate::dead;
  unregister_live(self);
  if (hooks.on_finish) hooks.on_finish(self);

  tasklet_impl* target = nullptr;
  if (escaped) {
    // An escaping exception goes straight to the innermost run() caller, or to main,
    // bypassing the ring and unblocking it if it waits.
    target = pop_watchdog();
    if (!target) target = main_;
    detach_from_wait(target);
    target->pending = std::move(escaped);
    if (target->state != tstate::runnable) {
      if (next)
        link_before(target, next);
      else
        link_sole(target);
    }
  } else if (next) {
    target = next;
  } else if ((target = pop_watchdog())) {
    link_sole(target);
  } else {
    target = main_;
    if (target->state == tstate::blocked) {
      std::string message = target->waiting_on->deadlock_message(target);
      if (std::string others = describe_blocked(target); !others.empty()) message += "; also stuck:" + others;
      detach_from_wait(target);
      target->pending = std::make_exception_ptr(deadlock_error(message));
    }
    link_sole(target);  // a paused main simply resumes: its schedule_remove() returns
  }
  jump(target);
  __builtin_unreachable();
}

// ---- primitives -----------------------------------------------------------------------------

std::string scheduler::describe_blocked(const tasklet_impl* except) const {
  // Oldest first, as they were created: the list itself runs newest first.
  std::vector<const tasklet_impl*> stuck;
  for (const tasklet_impl* t = all_head_; t; t = t->all_next)
    if (t != except && !t->watchdog && (t->state == tstate::blocked || t->state == tstate::paused)) stuck.push_back(t);
  std::string out;
  for (auto it = stuck.rbegin(); it != stuck.rend(); ++it) {
    const tasklet_impl* t = *it;
    out += "\n  " + label(t);
    if (t->state == tstate::blocked) {
      out += " waits on " + describe_wait(t);
    } else {
      out += t->started ? " is paused (nobody is left to insert it)" : " was never started (nobody is left to insert it)";
      if (std::string note = note_text(t->note); !note.empty()) out += " [" + note + "]";
    }
  }
  return out;
}

void scheduler::deadlock_on_block(const wait_target* w) const {
  std::string message = "deadlock: " + label(current_) + " is the last runnable tasklet and cannot block";
  message += w ? " on " + w->describe() : std::string(" (schedule_remove)");
  if (std::string note = note_text(current_->note); !note.empty()) message += " [" + note + "]";
  std::string stuck = describe_blocked(current_);
  message += stuck.empty() ? "; no other tasklet exists" : "; none of the others can run:" + stuck;
  throw deadlock_error(message);
}

void scheduler::schedule_remove() {
  ensure_can_block();
  tasklet_impl* self = current_;
  self->state = tstate::paused;
  leave_ring_and_switch(self);
}

void scheduler::run_watchdog() {
  tasklet_impl* self = current_;
  if (self->next == self) return;
  tasklet_impl* next = self->next;
  self->watchdog = true;
  watchdogs_.push_back(self);
  unlink(self);
  self->state = tstate::paused;
  try {
    switch_to(next);
  } catch (...) {
    forget_watchdog(self);
    throw;
  }
  forget_watchdog(self);
}

void scheduler::insert(tasklet_impl* t) {
  if (t->state == tstate::dead) throw std::logic_error("tasklet::insert: cannot insert a dead tasklet");
  if (t->state == tstate::blocked) throw std::logic_error("tasklet::insert: cannot insert a blocked tasklet");
  if (t->state == tstate::runnable) return;
  forget_watchdog(t);
  link_before(t, current_);
}

void scheduler::remove(tasklet_impl* t) {
  if (t->state == tstate::blocked) throw std::logic_error("tasklet::remove: cannot remove a blocked tasklet");
  if (t == current_) throw std::logic_error("tasklet::remove: cannot remove the current tasklet");
  if (t->state != tstate::runnable) return;
  unlink(t);
  t->state = tstate::paused;
}

void scheduler::run_tasklet(tasklet_impl* t) {
  if (t->state == tstate::dead) throw std::logic_error("tasklet::run: cannot run a dead tasklet");
  if (t->state == tstate::blocked) throw std::logic_error("tasklet::run: cannot run a blocked tasklet");
  if (t == current_) return;
  if (t->state != tstate::runnable) {
    forget_watchdog(t);
    link_before(t, current_);
  }
  switch_to(t);
}

void scheduler::throw_into(tasklet_impl* t, std::exception_ptr e, bool pending) {
  if (!e) throw std::logic_error("tasklet::throw_exception: null exception");
  if (t->state == tstate::dead) {
    if (is_exit_exception(e)) return;
    throw std::logic_error("tasklet::throw_exception: cannot throw into a dead tasklet");
  }
  if (t == current_) std::rethrow_exception(e);
  detach_from_wait(t);
  forget_watchdog(t);
  t->pending = std::move(e);
  if (t->state != tstate::runnable) link_before(t, current_);
  if (!pending) switch_to(t);
}

// ---- backtraces ----------------------------------------------------------------------------

namespace {

struct frame_walk {
  void** out;
  std::size_t max;
  std::size_t skip;
  std::size_t n;
  bool to_signal_frame;  // skip everything up to the frame a signal interrupted
};

_Unwind_Reason_Code walk_frame(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<frame_walk*>(arg);
  int before_insn = 0;
  const _Unwind_Ptr ip = _Unwind_GetIPInfo(ctx, &before_insn);
  if (ip == 0) return _URC_END_OF_STACK;
  if (w->to_signal_frame) {
    // The interrupted frame's address is exact (it is not a return address); the frames before
    // it are the handler's own.
    if (!before_insn) return _URC_NO_REASON;
    w->to_signal_frame = false;
  } else if (w->skip > 0) {
    --w->skip;
    return _URC_NO_REASON;
  }
  if (w->n >= w->max) return _URC_END_OF_STACK;
  w->out[w->n++] = reinterpret_cast<void*>(before_insn ? ip : ip - 1);
  return _URC_NO_REASON;
}

// Runs on top of a suspended tasklet's stack, entered by backtrace_of() with ontop_fcontext()
// as if the tasklet's own suspended call to the switch had called it. It stays there after it
// has captured (so that the tasklet's saved context, which its frame overwrote, is not
// needed): the next capture resumes it in its loop, and the tasklet's next ordinary resume
// (land() on top of it) makes it return the scheduler's transfer to that suspended call.
bctx::transfer_t capture_on_stack(bctx::transfer_t t) noexcept;

struct capture_request {
  tasklet_impl* target;
  tasklet_impl* dumper;
  void** out;
  std::size_t max;
  std::size_t depth;
};

}  // namespace

[[gnu::noinline]] std::size_t collect_frames(void** out, std::size_t max, std::size_t skip) noexcept {
  frame_walk w{out, max, skip + 1, 0, false};
  _Unwind_Backtrace(walk_frame, &w);
  return w.n;
}

namespace {

[[gnu::noinline]] std::size_t collect_signal_frames(void** out, std::size_t max) noexcept {
  frame_walk w{out, max, 0, 0, true};
  _Unwind_Backtrace(walk_frame, &w);
  if (w.n == 0 && w.to_signal_frame) {
    // No frame was marked as interrupted: keep everything rather than nothing.
    w = frame_walk{out, max, 1, 0, false};
    _Unwind_Backtrace(walk_frame, &w);
  }
  return w.n;
}

bctx::transfer_t capture_on_stack(bctx::transfer_t t) noexcept {
  tasklet_impl* const me = static_cast<capture_request*>(t.data)->target;
  scheduler* const sched = me->sched;
  for (;;) {
    auto* req = static_cast<capture_request*>(t.data);
#if defined(__SANITIZE_ADDRESS__)
    const void* bottom = nullptr;
    std::size_t size = 0;
    __sanitizer_finish_switch_fiber(me->asan_fake_stack, &bottom, &size);
    if (!req->dumper->asan_bottom) {
      req->dumper->asan_bottom = bottom;
      req->dumper->asan_size = size;
    }
#endif
    req->depth = collect_frames(req->out, req->max, 1);
    me->in_capture = true;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(&me->asan_fake_stack, req->dumper->asan_bottom, req->dumper->asan_size);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(req->dumper->tsan_fiber, 0);
#endif
    t = bctx::jump_fcontext(t.fctx, nullptr);
    if (t.data != sched->pending_capture()) {
      // An ordinary resume, through land(): hand its transfer to the suspended switch, whose
      // caller finishes the sanitizer's fiber switch.
      me->in_capture = false;
      return t;
    }
  }
}

}  // namespace

std::size_t scheduler::backtrace_of(tasklet_impl* t, void** out, std::size_t max, const char** why) {
  *why = nullptr;
  if (t->sched != this) {
    *why = "it belongs to another thread";
    return 0;
  }
  if (t == current_) return collect_frames(out, max, 0);
  if (t->state == tstate::dead) {
    *why = "it has ended";
    return 0;
  }
  if (!t->started) {
    *why = "it has not started";
    return 0;
  }
  // The unwinder needs a few kilobytes below the tasklet's frames (sanitizers more).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr std::size_t headroom = 32 * 1024;
#else
  constexpr std::size_t headroom = 16 * 1024;
#endif
  if (!t->main && static_cast<std::size_t>(static_cast<char*>(t->context) - t->stack.base) < headroom) {
    *why = "too little free stack is left to take it safely";
    return 0;
  }
  tasklet_impl* self = current_;
  capture_request req{t, self, out, max, 0};
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(&self->asan_fake_stack, t->asan_bottom, t->asan_size);
#endif
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
  pending_capture_ = &req;
  bctx::transfer_t back = t->in_capture ? bctx::jump_fcontext(t->context, &req)
                                        : bctx::ontop_fcontext(t->context, &req, capture_on_stack);
  pending_capture_ = nullptr;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, nullptr, nullptr);
#endif
  t->context = back.fctx;
  return req.depth;
}

// ---- capturing another thread ---------------------------------------------------------------

namespace {

std::atomic<int> g_capture_signal{0};
std::once_flag g_capture_handler_once;

void on_capture_signal(int, siginfo_t*, void*) {
  const int saved_errno = errno;
  capture_slot& c = t_capture;
  int expected = capture_slot::requested;
  if (c.state.compare_exchange_strong(expected, capture_slot::filling, std::memory_order_acquire)) {
    thread_capture& d = c.data;
    d.has_tasklet = false;
    d.main = false;
    d.tasklet_id = 0;
    d.name_len = 0;
    if (scheduler* s = c.sched.load(std::memory_order_relaxed)) {
      if (const tasklet_impl* t = s->current()) {
        d.has_tasklet = true;
        d.main = t->main;
        d.tasklet_id = t->id;
        d.name_len = std::min(t->name.size(), thread_capture::max_name);
        std::memcpy(d.name, t->name.data(), d.name_len);
      }
    }
    d.depth = collect_signal_frames(d.frames, thread_capture::max_frames);
    c.state.store(capture_slot::done, std::memory_order_release);
  }
  errno = saved_errno;
}

void install_capture_handler() {
  std::call_once(g_capture_handler_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_capture_signal;
    // SA_ONSTACK: a tasklet's stack may be nearly full; the thread's alternate stack is not.
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(capture_signal(), &sa, nullptr);
  });
}

}  // namespace

int capture_signal() noexcept {
  const int s = g_capture_signal.load(std::memory_order_relaxed);
  return s ? s : SIGRTMIN + 5;
}

void set_capture_signal(int signo) noexcept { g_capture_signal.store(signo, std::memory_order_relaxed); }

bool capture_thread(scheduler& s, thread_capture& out, std::chrono::milliseconds timeout) {
  install_capture_handler();
  capture_slot& c = *s.slot();
  int expected = capture_slot::idle;
  if (!c.state.compare_exchange_strong(expected, capture_slot::requested, std::memory_order_relaxed)) return false;
  if (::pthread_kill(s.thread(), capture_signal()) != 0) {
    c.state.store(capture_slot::idle, std::memory_order_relaxed);
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (c.state.load(std::memory_order_acquire) == capture_slot::done) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      expected = capture_slot::requested;
      if (c.state.compare_exchange_strong(expected, capture_slot::idle, std::memory_order_relaxed)) return false;
      // The handler has begun: it finishes in microseconds.
      while (c.state.load(std::memory_order_acquire) != capture_slot::done) std::this_thread::yield();
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  out = c.data;
  c.state.store(capture_slot::idle, std::memory_order_release);
  return true;
}

std::unique_lock<std::mutex> lock_registry() { return std::unique_lock<std::mutex>(registry().mutex); }

const std::vector<scheduler*>& registered_schedulers() noexcept { return registry().schedulers; }

void scheduler::set_remote(void* ctx, remote_post post) noexcept {
  std::lock_guard lock(registry().mutex);
  remote_ctx_ = post ? ctx : nullptr;
  remote_post_ = post;
}

bool scheduler::post_remote(std::function<void()> fn) const {
  if (!remote_post_) return false;
  remote_post_(remote_ctx_, std::move(fn));
  return true;
}

// ---- overflow lookup (signal handler) -------------------------------------------------------

bool overflow_culprit(const void* fault, std::uint64_t& id, const char*& name, std::size_t& len) noexcept {
  scheduler* s = t_sched;
  if (!s) return false;
  const tasklet_impl* t = s->current();
  if (!t || t->main || !t->stack.guard) return false;
  const char* addr = static_cast<const char*>(fault);
  // The guard page itself, or a frame that jumped a little past it.
  if (addr < t->stack.guard - 64 * 1024 || addr >= t->stack.base) return false;
  id = t->id;
  name = t->name.data();
  len = t->name.size();
  return true;
}

// ---- the detail interface for the layers above ----------------------------------------------

tasklet_impl* create_tasklet(std::size_t size, std::size_t align, tasklet_options&& opts, void** storage) {
  return scheduler::get().create(size, align, std::move(opts), storage);
}

void bind_tasklet(tasklet_impl* t, tasklet_entry entry) noexcept { t->entry = entry; }

void discard_tasklet(tasklet_impl* t) noexcept {
  t->refs = 1;  // drop the caller's handle; discard() drops the scheduler's
  t->sched->discard(t);
}

void retain(tasklet_impl* t) noexcept { ++t->refs; }

void release(tasklet_impl* t) noexcept {
  if (--t->refs == 0) {
    delete t;
    return;
  }
  if (t->refs == 1 && t->state == tstate::paused && !t->main && !t->watchdog) t->sched->reap_unreachable(t);
}

tasklet_impl* current_tasklet() noexcept { return scheduler::get().current(); }

void block_current(wait_target& w, void* slot) { scheduler::get().block_current(w, slot); }

void* wait_slot(const tasklet_impl* t) noexcept { return t->slot; }

const wait_note* current_note(const tasklet_impl* t) noexcept { return t->note; }

void push_note(wait_note* n) {
  tasklet_impl* t = scheduler::get().current();
  n->outer = t->note;
  t->note = n;
}

void pop_note(const wait_note* outer) noexcept { t_sched->current()->note = outer; }

void wake_now(tasklet_impl* t) { scheduler::get().wake_now(t); }

void wake_later(tasklet_impl* t) noexcept { scheduler::get().wake_later(t); }

bool is_main(const tasklet_impl* t) noexcept { return t->main; }

const void* owner_token() noexcept { return &t_owner_token; }

void check_owner(const void* owner, const char* what) {
  if (owner != &t_owner_token) [[unlikely]]
    throw std::logic_error(std::string(what) + " used from a thread other than the one that created it");
}

}  // namespace twistlet::detail
