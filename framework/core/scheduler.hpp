// The per-thread scheduler and the tasklet control block (private to the framework).
#pragma once

#include <twistlet/tasklet.hpp>

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <source_location>
#include <string>
#include <vector>

#include "core/stack_pool.hpp"

namespace twistlet::detail {

class scheduler;
struct capture_slot;

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
  bool in_capture = false; // suspended inside capture_on_stack() (see scheduler::backtrace_of)
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
  // For introspection: where the tasklet was made, and the innermost wait_note.
  source_location created_at;
  const wait_note* note = nullptr;
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

/// What a thread was running when the capture signal interrupted it (see capture_thread()).
struct thread_capture {
  static constexpr std::size_t max_frames = 64;
  static constexpr std::size_t max_name = 96;
  bool has_tasklet = false;  // the thread had a scheduler
  bool main = false;
  std::uint64_t tasklet_id = 0;
  std::size_t name_len = 0;
  char name[max_name] = {};
  std::size_t depth = 0;
  // Addresses inside the calls (return addresses minus one), innermost first.
  void* frames[max_frames] = {};
};

/// Addresses of the calling code's frames, innermost first, starting with the caller of
/// collect_frames() after skipping `skip` more; each points inside its call instruction, so
/// that symbolising it finds the caller's line. Async-signal-safe with this toolchain (libgcc's
/// unwinder finds frame tables through glibc's lock-free _dl_find_object).
std::size_t collect_frames(void** out, std::size_t max, std::size_t skip) noexcept;

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
  /// Throws deadlock_error (naming `w`, what the caller was going to wait on, if given) unless
  /// some other tasklet could run after the caller blocks.
  void ensure_can_block(const wait_target* w = nullptr);
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

  /// One line per blocked tasklet ("\n  tasklet 3 'x' waits on ..."), and per paused one that
  /// has started, for deadlock messages; `except` is left out.
  std::string describe_blocked(const tasklet_impl* except = nullptr) const;

  /// Collects the frames of `t`, a suspended tasklet of this thread, by running the unwinder
  /// on top of its stack (the tasklet stays where it is). Returns the depth, or 0 and a reason
  /// in `why` (not started, dead, the current tasklet, too little free stack).
  std::size_t backtrace_of(tasklet_impl* t, void** out, std::size_t max, const char** why);

  // ---- for monitors on other threads (the debug layer) ----------------------------------

  /// Bits of loop_flags(), set by the reactor of this thread.
  static constexpr std::uint32_t loop_running = 1;  // inside its loop
  static constexpr std::uint32_t loop_idle = 2;     // waiting in the kernel for I/O or a timer
  /// What a monitor compares to see whether the thread gets on: the tasklet the last switch
  /// went to, and the count of reactor loop passes. While either changes, nothing is stuck.
  /// (A switch only stores a pointer it has in a register: no load, no dependency between
  /// switches. Two tasklets that hand over to each other can leave the same pointer at two
  /// samples, but the reactor tasklet has its turn in every round of the run queue, which
  /// moves the pass count.)
  struct progress_mark {
    std::uintptr_t last_switch = 0;
    std::uint64_t passes = 0;
    friend bool operator==(const progress_mark&, const progress_mark&) = default;
  };
  progress_mark progress() const noexcept {
    return {last_switch_.load(std::memory_order_relaxed), passes_.load(std::memory_order_relaxed)};
  }
  std::uint32_t loop_flags() const noexcept { return loop_flags_.load(std::memory_order_seq_cst); }
  /// For this thread's reactor: a loop pass began.
  void note_pass() noexcept {
    // A plain load and store, not a locked add: only this thread writes the count.
    passes_.store(passes_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  /// For this thread's reactor: its loop state (loop_running, loop_idle). Sequentially
  /// consistent, so that a monitor going to sleep and the loop waking up cannot miss each
  /// other (see the stall monitor in reactor.cpp).
  void set_loop_flags(std::uint32_t f) noexcept { loop_flags_.store(f, std::memory_order_seq_cst); }

  /// Runs `fn` on this scheduler's thread, soon, from any thread (a reactor's
  /// call_from_thread); `fn` is dropped unrun if the loop never gets to it.
  using remote_post = void (*)(void* ctx, std::function<void()> fn);
  /// For this thread's reactor, while it exists: how to reach the thread (posts are answered
  /// while its loop runs; post = nullptr: not any more). Takes the registry lock.
  void set_remote(void* ctx, remote_post post) noexcept;
  /// With the registry lock held: posts `fn` to the thread if it has a way in.
  bool post_remote(std::function<void()> fn) const;

  /// The request of the backtrace_of() in progress (see capture_on_stack in scheduler.cpp).
  const void* pending_capture() const noexcept { return pending_capture_; }
  capture_slot* slot() const noexcept { return slot_; }
  pthread_t thread() const noexcept { return thread_; }
  pid_t tid() const noexcept { return tid_; }
  /// Unique per process; names the scheduler across the registry lock.
  std::uint64_t serial() const noexcept { return serial_; }

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
  [[noreturn]] void deadlock_on_block(const wait_target* w) const;
  void note_switch(const tasklet_impl* to) noexcept {
    last_switch_.store(reinterpret_cast<std::uintptr_t>(to), std::memory_order_relaxed);
  }
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

  std::atomic<std::uintptr_t> last_switch_{0};
  std::atomic<std::uint64_t> passes_{0};
  std::atomic<std::uint32_t> loop_flags_{0};
  pthread_t thread_;
  pid_t tid_;
  std::uint64_t serial_;
  // Guarded by the registry lock.
  void* remote_ctx_ = nullptr;
  remote_post remote_post_ = nullptr;
  capture_slot* slot_;
  const void* pending_capture_ = nullptr;
};

std::uint64_t next_tasklet_id() noexcept;

/// "tasklet 3 'name'", or "the main tasklet (1)".
std::string tasklet_label(const tasklet_impl* t);
/// The text of note `n` (empty for nullptr).
std::string note_text(const wait_note* n);
/// What `t` waits on, for listings: its wait target's describe_waiter() (if it is blocked)
/// followed by its innermost note in brackets; empty if neither.
std::string describe_wait(const tasklet_impl* t);

// ---- the registry of every thread's scheduler --------------------------------------------------

/// The lock that keeps the registered schedulers alive (a scheduler unregisters, under it,
/// before it is destroyed).
std::unique_lock<std::mutex> lock_registry();
/// Every live scheduler, oldest first; only with lock_registry() held.
const std::vector<scheduler*>& registered_schedulers() noexcept;

/// The signal capture_thread() sends (by default SIGRTMIN + 5).
int capture_signal() noexcept;
/// Chooses the signal capture_thread() sends; before the first capture only.
void set_capture_signal(int signo) noexcept;
/// With lock_registry() held: interrupts `s`'s thread with the capture signal and copies what
/// it was running into `out`. False if the thread did not answer within `timeout` (it blocks
/// the signal, or runs under a sanitizer that delays signals).
bool capture_thread(scheduler& s, thread_capture& out, std::chrono::milliseconds timeout);

/// Symbolised frames, one a line ("<indent>#0 function at file:line"), for reports.
std::string format_frames(void* const* frames, std::size_t n, const char* indent);

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

inline void scheduler::ensure_can_block(const wait_target* w) {
  if (current_->next != current_ || !watchdogs_.empty()) [[likely]]
    return;
  deadlock_on_block(w);
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
  ensure_can_block(&w);
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
