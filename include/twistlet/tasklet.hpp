// twistlet core layer: tasklets and the per-thread scheduler.
//
// A tasklet is a cheap stackful microthread (Stackless Python's model). Each OS thread has
// one scheduler, created on first use; the thread's own stack is its *main* tasklet. Runnable
// tasklets form a ring that the scheduler walks round-robin; a tasklet runs until it yields
// (schedule()), blocks (on a channel, or in block_on), or ends. Tasklets never migrate between
// threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <source_location>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>


namespace twistlet {

#if defined(__cpp_lib_source_location)
/// A place in the source code (std::source_location), as introspection shows where a tasklet
/// was created.
using source_location = std::source_location;
#else
// clang before 15 has no __builtin_source_location, so libstdc++ leaves std::source_location
// out under it (the fuzzing build, fuzz/, uses clang 14). This stand-in has the same members
// and is filled in by the builtins both compilers do have.
struct source_location {
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE(),
                                           std::uint_least32_t column = __builtin_COLUMN()) noexcept {
    source_location l;
    l.file_ = file;
    l.function_ = function;
    l.line_ = line;
    l.column_ = column;
    return l;
  }
  constexpr source_location() noexcept = default;
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return column_; }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
};
#endif

/// Thrown into a killed tasklet at its suspension point. Deliberately not a std::exception, so
/// `catch (const std::exception&)` in application code does not swallow a kill. Escaping a
/// tasklet's function, it ends the tasklet silently.
struct tasklet_exit {};

/// A block that nothing can ever end: blocking the last runnable tasklet, or the main tasklet
/// left waiting when the last other tasklet ended.
struct deadlock_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// How to create a tasklet.
struct tasklet_options {
  /// Shown in introspection, deadlock messages and stack-overflow reports. (The explicit
  /// initializer keeps g++'s -Wmissing-field-initializers quiet for `{.stack_size = n}`.)
  std::string name{};
  /// Usable stack bytes, rounded up to whole pages; 0 picks the default (128 KiB).
  std::size_t stack_size = 0;
  /// Where the tasklet was created, shown by introspection (debug.hpp). The default is the
  /// place these options were made: the call of spawn() or of the constructor when it is given
  /// no options or `{.name = ...}` braces. Code that creates tasklets for its callers may pass
  /// its own caller's location on.
  source_location created_at = source_location::current();
};

namespace detail {
class tasklet_impl;

/// The type-erased function a tasklet runs, stored in memory the core provides (the top of the
/// tasklet's stack, or the heap for large callables).
struct tasklet_entry {
  void (*invoke)(void* fn) = nullptr;
  void (*destroy)(void* fn) noexcept = nullptr;
  void* fn = nullptr;
};

/// Creates a paused tasklet and returns it with one handle reference; `storage` receives
/// `size` bytes aligned to `align` where the caller must construct the function before the
/// tasklet can run.
tasklet_impl* create_tasklet(std::size_t size, std::size_t align, tasklet_options&& opts,
                             void** storage);
/// Completes create_tasklet once the function lives in its storage.
void bind_tasklet(tasklet_impl* t, tasklet_entry entry) noexcept;
/// Undoes create_tasklet when constructing the function threw.
void discard_tasklet(tasklet_impl* t) noexcept;
void retain(tasklet_impl* t) noexcept;
void release(tasklet_impl* t) noexcept;

template <class Fn>
tasklet_impl* make_tasklet(Fn&& fn, tasklet_options&& opts) {
  using F = std::decay_t<Fn>;
  void* storage = nullptr;
  tasklet_impl* t = create_tasklet(sizeof(F), alignof(F), std::move(opts), &storage);
  try {
    ::new (storage) F(std::forward<Fn>(fn));
  } catch (...) {
    discard_tasklet(t);
    throw;
  }
  tasklet_entry entry;
  entry.invoke = [](void* p) { (*static_cast<F*>(p))(); };
  entry.destroy = [](void* p) noexcept { static_cast<F*>(p)->~F(); };
  entry.fn = storage;
  bind_tasklet(t, entry);
  return t;
}
}  // namespace detail

/// A copyable handle to a tasklet; copies refer to the same tasklet. The scheduler owns every
/// tasklet that is runnable or blocked, so dropping the last handle of such a tasklet neither
/// stops nor frees it (fire-and-forget `tasklet::spawn(f);` is normal). A tasklet that is
/// paused and not yet started is discarded when its last handle goes; a paused, started one is
/// killed then, so that its stack unwinds.
class tasklet {
 public:
  /// An empty handle.
  tasklet() noexcept = default;

  /// Creates a tasklet that will run `fn()` (any callable `void()`; it may throw). The new
  /// tasklet is alive but paused: not in the run queue until insert() or run().
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, tasklet> &&
                                              std::is_invocable_v<std::decay_t<F>&>>>
  explicit tasklet(F&& fn, tasklet_options opts = {})
      : impl_(detail::make_tasklet(std::forward<F>(fn), std::move(opts))) {}

  /// Creates a tasklet and appends it to the run queue; it starts when the scheduler reaches it.
  template <class F>
  static tasklet spawn(F&& fn, tasklet_options opts = {}) {
    tasklet t(std::forward<F>(fn), std::move(opts));
    t.insert();
    return t;
  }

  /// Another handle to the same tasklet.
  tasklet(const tasklet& other) noexcept : impl_(other.impl_) {
    if (impl_) detail::retain(impl_);
  }
  /// Takes over `other`'s tasklet; `other` becomes empty.
  tasklet(tasklet&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  /// Makes this handle refer to `other`'s tasklet.
  tasklet& operator=(const tasklet& other) noexcept {
    tasklet(other).swap(*this);
    return *this;
  }
  /// Takes over `other`'s tasklet; `other` becomes empty.
  tasklet& operator=(tasklet&& other) noexcept {
    tasklet(std::move(other)).swap(*this);
    return *this;
  }
  /// Drops the handle (see the class comment for what happens to the tasklet).
  ~tasklet() {
    if (impl_) detail::release(impl_);
  }
  /// Exchanges the tasklets the two handles refer to.
  void swap(tasklet& other) noexcept { std::swap(impl_, other.impl_); }

  /// Appends to the run queue (no-op if already there).
  /// Throws std::logic_error if the tasklet is blocked or dead.
  void insert();
  /// Takes the tasklet out of the run queue; it becomes paused.
  /// Throws std::logic_error if it is blocked or is the current tasklet.
  void remove();
  /// Switches to the tasklet now (inserting it if needed); the caller stays runnable and
  /// resumes when the round-robin reaches it again (Stackless `t.run()`).
  /// Throws std::logic_error if the tasklet is blocked or dead.
  void run();
  /// Raises tasklet_exit in the tasklet. `pending == false` switches to it now; `true` only
  /// makes it runnable. Killing a blocked tasklet removes it from what it waits on; killing a
  /// tasklet that never started runs none of its function. No-op on a dead tasklet.
  void kill(bool pending = false);
  /// Raises `e` in the tasklet at its suspension point, with kill()'s scheduling rules. On the
  /// current tasklet, throws synchronously. Throws std::logic_error for a dead tasklet (unless
  /// `e` is a tasklet_exit: then nothing happens) or a null `e`.
  void throw_exception(std::exception_ptr e, bool pending = false);

  /// Started or startable, not finished.
  bool alive() const noexcept;
  /// Waiting on a channel or in block_on.
  bool blocked() const noexcept;
  /// In the run queue, or blocked.
  bool scheduled() const noexcept;
  /// Alive and not scheduled.
  bool paused() const noexcept;
  /// The main tasklet of its thread (the thread's own stack).
  bool is_main() const noexcept;
  /// The tasklet running now on the calling thread.
  bool is_current() const noexcept;
  /// Unique per process, never reused; 0 for an empty handle.
  std::uint64_t id() const noexcept;
  /// The name given in tasklet_options (empty for an empty handle).
  const std::string& name() const noexcept;

  /// Not an empty handle.
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  /// Two handles to the same tasklet (or two empty ones) compare equal.
  friend bool operator==(const tasklet& a, const tasklet& b) noexcept { return a.impl_ == b.impl_; }

  /// For the layers above core: the tasklet behind the handle.
  detail::tasklet_impl* impl() const noexcept { return impl_; }
  /// For the layers above core: a new handle to `t`.
  static tasklet from_impl(detail::tasklet_impl* t) noexcept {
    if (t) detail::retain(t);
    return tasklet(t, adopt_tag{});
  }

 private:
  struct adopt_tag {};
  tasklet(detail::tasklet_impl* t, adopt_tag) noexcept : impl_(t) {}
  detail::tasklet_impl* impl_ = nullptr;
};

/// The running tasklet of this thread (the main tasklet if no other is running).
tasklet getcurrent();
/// This thread's main tasklet: the thread's own stack.
tasklet getmain();
/// Tasklets in the run queue, the current one included (at least 1 when called).
std::size_t getruncount();
/// Yields: the caller goes to the back of the run queue and the next tasklet runs. Returns at
/// once if the caller is the only runnable tasklet.
void schedule();
/// Yields and leaves the run queue: the caller becomes paused until someone inserts or runs
/// it. Throws deadlock_error if nothing else could then ever run.
void schedule_remove();
/// Runs the queue until only the caller is left. The caller is paused meanwhile (it acts as
/// the watchdog). An exception escaping any tasklet ends run() early and is rethrown here; the
/// other tasklets stay where they are and a later run() continues them.
void run();

namespace detail {
/// Something a blocked tasklet waits on: a channel, a deferred, a timer. The core asks it to
/// forget a waiter when an exception is thrown into the waiter or a deadlock is declared.
class wait_target {
 public:
  /// Removes `t` from the waiters; after this the target must not wake `t`.
  virtual void abandon(tasklet_impl* t) noexcept = 0;
  /// A short description for introspection ("channel 0x... (balance -2)", "a deferred ...").
  virtual std::string describe() const = 0;
  /// What the blocked tasklet `t` is doing here, for listings ("receive on channel ..."); by
  /// default describe().
  virtual std::string describe_waiter(const tasklet_impl* t) const;
  /// The message of the deadlock_error the main tasklet receives when the last other tasklet
  /// ends while it waits here.
  virtual std::string deadlock_message(const tasklet_impl* t) const;

 protected:
  ~wait_target() = default;
};

/// A note on what a tasklet is doing, shown by introspection next to what it waits on. The
/// code about to block stacks one for its duration (wait_note_scope), e.g. sleep() with its due
/// time or debug::wait_label with the user's text. Notes live on the tasklet's stack.
struct wait_note {
  /// The note this one hides, restored when it goes.
  const wait_note* outer = nullptr;
  /// The text, if it is fixed (it must outlive the note).
  const char* text = nullptr;
  /// Formats the text lazily (at dump time) when `text` is null, so that a note costs nothing
  /// unless someone looks.
  std::string (*format)(const wait_note& self) = nullptr;
};

/// The innermost note of tasklet `t`, or nullptr.
const wait_note* current_note(const tasklet_impl* t) noexcept;
/// Makes `n` the current tasklet's innermost note (`n->outer` becomes the one it hides).
void push_note(wait_note* n);
/// Makes `outer` (the `outer` of the innermost note) the current tasklet's innermost note.
void pop_note(const wait_note* outer) noexcept;

/// Stacks a note on the current tasklet for the scope's duration.
class wait_note_scope {
 public:
  explicit wait_note_scope(wait_note& n) : n_(n) { push_note(&n); }
  ~wait_note_scope() { pop_note(n_.outer); }
  wait_note_scope(const wait_note_scope&) = delete;
  wait_note_scope& operator=(const wait_note_scope&) = delete;

 private:
  wait_note& n_;
};

/// The current tasklet of this thread.
tasklet_impl* current_tasklet() noexcept;
/// Blocks the current tasklet on `w` until wake_now() or wake_later() is called for it, or an
/// exception is thrown into it (then `w.abandon()` has been called and the exception is
/// rethrown here). Throws deadlock_error, with nothing changed, if no other tasklet could run.
void block_current(wait_target& w, void* slot = nullptr);
/// The slot pointer a blocked tasklet registered with block_current().
void* wait_slot(const tasklet_impl* t) noexcept;
/// Wakes blocked `t` and switches to it at once; the caller goes to the back of the run queue.
void wake_now(tasklet_impl* t);
/// Wakes blocked `t` by appending it to the run queue; the caller continues.
void wake_later(tasklet_impl* t) noexcept;
/// Whether `t` is the main tasklet of its thread.
bool is_main(const tasklet_impl* t) noexcept;
/// Throws std::logic_error naming `what` if called from another thread than the one that owns
/// an object created with `owner` = owner_token() (checked only in TWISTLET_CHECKS builds).
const void* owner_token() noexcept;
void check_owner(const void* owner, const char* what);
#if defined(TWISTLET_CHECKS)
#define TWISTLET_CHECK_OWNER(owner, what) ::twistlet::detail::check_owner(owner, what)
#else
#define TWISTLET_CHECK_OWNER(owner, what) ((void)0)
#endif
}  // namespace detail

}  // namespace twistlet
