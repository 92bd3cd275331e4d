// The per-thread scheduler and the tasklet control block (private to the framework).
#pragma once

#include <twistlet/tasklet.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "core/stack_pool.hpp"

namespace twistlet::detail {

class scheduler;

enum class tstate : std::uint8_t {
  paused,    // alive, in no queue
  runnable,  // in the ring (the current tasklet is always in the ring)
  blocked,   // in a wait_target's queue
  dead,
};

// The C++ runtime keeps the exceptions being handled, and the count of those in flight, per
// thread. A tasklet that switches out inside a catch block (or a destructor during unwinding)
// must find its own state again when it resumes, so each tasklet carries a copy.
struct eh_state {
  void* caught = nullptr;
  unsigned int uncaught = 0;
};

class tasklet_impl {
 public:
  // Ring links while runnable.
  tasklet_impl* next = nullptr;
  tasklet_impl* prev = nullptr;
  // Links in a wait_target's queue while blocked (for targets that keep one).
  tasklet_impl* wait_next = nullptr;
  tasklet_impl* wait_prev = nullptr;
  void* context = nullptr;  // the Boost.Context fcontext_t to resume
  scheduler* sched = nullptr;
  tstate state = tstate::paused;
  bool main = false;
  bool started = false;
  bool watchdog = false;   // paused inside run(), on the scheduler's watchdog stack
  bool heap_fn = false;    // the function lives on the heap, not on the stack
  std::uint32_t fn_align = 0;
  std::uint32_t refs = 0;  // handles, plus one held by the scheduler while alive
  wait_target* waiting_on = nullptr;
  void* slot = nullptr;
  std::exception_ptr pending;  // raised when the tasklet next resumes
  tasklet_entry entry;
  stack_region stack;
  std::uint64_t id = 0;
  std::string name;
  eh_state eh;
  // Every live tasklet of the thread, for introspection and for the kill at thread exit.
  tasklet_impl* all_next = nullptr;
  tasklet_impl* all_prev = nullptr;
#if defined(__SANITIZE_ADDRESS__)
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;
  std::size_t asan_size = 0;
#endif
#if defined(__SANITIZE_THREAD__)
  void* tsan_fiber = nullptr;
#endif
};

/// Hooks the upper layers register to learn about tasklet lifetimes (the debug layer's
/// introspection); all optional.
struct scheduler_hooks {
  void (*on_create)(tasklet_impl*) = nullptr;
  void (*on_finish)(tasklet_impl*) = nullptr;
};

/// This thread's scheduler; set once, when the thread first needs one. (constinit: other
/// translation units read it directly, without a thread-local initialisation wrapper.)
extern constinit thread_local scheduler* t_sched;

class scheduler {
 public:
  /// This thread's scheduler, created on first use.
  static scheduler& get() {
    if (scheduler* s = t_sched) [[likely]]
      return *s;
    return create_for_thread();
  }
  /// This thread's scheduler if it exists.
  static scheduler* peek() noexcept { return t_sched; }

  scheduler();
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  tasklet_impl* current() const noexcept { return current_; }
  tasklet_impl* main_tasklet() noexcept { return main_; }
  std::size_t runcount() const noexcept { return runcount_; }
  stack_pool& stacks() noexcept { return stacks_; }
  tasklet_impl* first_live() const noexcept { return all_head_; }

  tasklet_impl* create(std::size_t fn_size, std::size_t fn_align, tasklet_options&& opts, void** storage);
  void register_live(tasklet_impl* t) noexcept;

  // Scheduling primitives (Stackless semantics; see tasklet.hpp). The ones on the paths of
  // schedule() and of channel hand-overs are inline below, so that each of those paths calls
  // out of line only once, into jump().
  void schedule();
  void schedule_remove();
  void run_watchdog();
  void insert(tasklet_impl* t);
  void remove(tasklet_impl* t);
  void run_tasklet(tasklet_impl* t);
  void throw_into(tasklet_impl* t, std::exception_ptr e, bool pending);
  void block_current(wait_target& w, void* slot);
  /// block_current() for a caller that has already called ensure_can_block().
  void park_current(wait_target& w, void* slot);
  void ensure_can_block();
  void wake_now(tasklet_impl* t);
  void wake_later(tasklet_impl* t) noexcept;

  /// Handle reference count reached one (only the scheduler's): discard or kill a paused
  /// tasklet nobody can resume any more.
  void reap_unreachable(tasklet_impl* t) noexcept;
  /// Frees a tasklet that never ran (its function could not be constructed, or nobody can
  /// start it any more).
  void discard(tasklet_impl* t) noexcept;

  [[noreturn]] void finish_current(std::exception_ptr escaped) noexcept;
  /// Called on the new stack right after every jump lands.
  void resumed(void* from_context, tasklet_impl* from) noexcept;

  std::string describe_blocked() const;

  static scheduler_hooks hooks;

 private:
  static scheduler& create_for_thread();
  void link_before(tasklet_impl* t, tasklet_impl* pos) noexcept;
  void link_after(tasklet_impl* t, tasklet_impl* pos) noexcept;
  void link_sole(tasklet_impl* t) noexcept;
  void unlink(tasklet_impl* t) noexcept;
  void switch_to(tasklet_impl* to);
  // The one place where a tasklet suspends: every switch goes through this call, so a resumed
  // tasklet returns through the same code its predecessor entered, which keeps the CPU's
  // return-address predictions right (see scheduler.cpp).
  [[gnu::noinline]] void jump(tasklet_impl* to) noexcept;
  [[noreturn]] static void raise_pending(tasklet_impl* self);
  [[noreturn]] void deadlock_on_block() const;
  void leave_ring_and_switch(tasklet_impl* self);
  void leave_ring_to_watchdog(tasklet_impl* self);
  tasklet_impl* pop_watchdog() noexcept;
  void forget_watchdog(tasklet_impl* t) noexcept;
  void detach_from_wait(tasklet_impl* t) noexcept;
  void check_stack(tasklet_impl* t) noexcept;
  void kill_all_at_exit() noexcept;
  void unregister_live(tasklet_impl* t) noexcept;
  void destroy_entry(tasklet_impl* t) noexcept;
  tasklet_impl* new_impl();
  void free_impl(tasklet_impl* t) noexcept;

  tasklet_impl* main_ = nullptr;
  tasklet_impl* current_ = nullptr;
  std::size_t runcount_ = 0;
  std::vector<tasklet_impl*> watchdogs_;
  tasklet_impl* all_head_ = nullptr;
  eh_state* eh_globals_ = nullptr;
  stack_pool stacks_;
  // Control blocks of tasklets that ended with no handle left, kept (destroyed, as raw memory)
  // for the next tasklets: spawning and ending a short tasklet then costs no heap traffic.
  std::vector<tasklet_impl*> spare_;
};

std::uint64_t next_tasklet_id() noexcept;

// ---- the hot paths, inline ----------------------------------------------------------------------

inline void scheduler::link_before(tasklet_impl* t, tasklet_impl* pos) noexcept {
  t->next = pos;
  t->prev = pos->prev;
  pos->prev->next = t;
  pos->prev = t;
  t->state = tstate::runnable;
  ++runcount_;
}

inline void scheduler::link_after(tasklet_impl* t, tasklet_impl* pos) noexcept { link_before(t, pos->next); }

inline void scheduler::link_sole(tasklet_impl* t) noexcept {
  t->next = t->prev = t;
  t->state = tstate::runnable;
  runcount_ = 1;
}

inline void scheduler::unlink(tasklet_impl* t) noexcept {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->next = t->prev = nullptr;
  --runcount_;
}

inline void scheduler::switch_to(tasklet_impl* to) {
  tasklet_impl* self = current_;
  jump(to);
  if (self->pending) [[unlikely]]
    raise_pending(self);
}

inline void scheduler::ensure_can_block() {
  if (current_->next != current_ || !watchdogs_.empty()) [[likely]]
    return;
  deadlock_on_block();
}

inline void scheduler::leave_ring_and_switch(tasklet_impl* self) {
  tasklet_impl* next = self->next;
  if (next == self) [[unlikely]] {
    leave_ring_to_watchdog(self);
    return;
  }
  unlink(self);
  switch_to(next);
}

inline void scheduler::schedule() {
  tasklet_impl* next = current_->next;
  if (next != current_) switch_to(next);
}

inline void scheduler::park_current(wait_target& w, void* slot) {
  tasklet_impl* self = current_;
  self->waiting_on = &w;
  self->slot = slot;
  self->state = tstate::blocked;
  leave_ring_and_switch(self);
}

inline void scheduler::block_current(wait_target& w, void* slot) {
  ensure_can_block();
  park_current(w, slot);
}

inline void scheduler::wake_now(tasklet_impl* t) {
  t->waiting_on = nullptr;
  link_after(t, current_);
  switch_to(t);
}

inline void scheduler::wake_later(tasklet_impl* t) noexcept {
  t->waiting_on = nullptr;
  link_before(t, current_);
}

}  // namespace twistlet::detail
