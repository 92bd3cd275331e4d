// twistlet reactor layer: time. Delayed calls, the reactor_time interface (Twisted's
// IReactorTime), a deterministic manual_clock for tests, looping_call, defer_later, and
// deferred<T>::add_timeout.
//
// Calls due at the same instant run in the order they were scheduled. A call moved by reset()
// or delay() keeps its place relative to the calls it did not pass, as in Twisted's Clock
// (which stable-sorts its list): moved later onto an instant, it runs before the calls
// already due then; moved earlier onto an instant, it runs after them.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <twistlet/deferred.hpp>

namespace twistlet {

/// Time spans; any std::chrono::duration converts implicitly.
using duration = std::chrono::nanoseconds;
/// Points in (steady) time.
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

/// delayed_call::cancel() (or reset/delay) of a call that was cancelled.
struct already_cancelled_error : std::logic_error {
  using std::logic_error::logic_error;
  already_cancelled_error() : std::logic_error("delayed call was already cancelled") {}
};

/// delayed_call::cancel() (or reset/delay) of a call that has run or is running.
struct already_run_error : std::logic_error {
  using std::logic_error::logic_error;
  already_run_error() : std::logic_error("delayed call has already run") {}
};

namespace detail {
struct timer_node;
class timer_queue;
struct time_access;

/// A move-only `void()` callable for timers. Functions of up to inline_size bytes that move
/// without throwing (a lambda capturing a few handles, a std::function) live inside it, so
/// that scheduling a call allocates nothing for the function; larger ones go to the heap.
class timer_task {
 public:
  /// Bytes available for a function stored in place.
  static constexpr std::size_t inline_size = 48;

  /// An empty task.
  timer_task() noexcept = default;
  /// A task calling (a decayed copy of) `f`.
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, timer_task> && std::is_invocable_v<std::decay_t<F>&>)
  timer_task(F&& f) {
    using G = std::decay_t<F>;
    if constexpr (fits_inline<G>) {
      ::new (static_cast<void*>(buf_)) G(std::forward<F>(f));
    } else {
      *reinterpret_cast<G**>(buf_) = new G(std::forward<F>(f));
    }
    ops_ = &ops_for<G>::table;
  }
  /// Takes over `o`'s function, leaving `o` empty.
  timer_task(timer_task&& o) noexcept : ops_(std::exchange(o.ops_, nullptr)) {
    if (ops_) ops_->relocate(buf_, o.buf_);
  }
  /// Destroys this task's function and takes over `o`'s, leaving `o` empty.
  timer_task& operator=(timer_task&& o) noexcept {
    if (this != &o) {
      reset();
      if (o.ops_) {
        o.ops_->relocate(buf_, o.buf_);
        ops_ = std::exchange(o.ops_, nullptr);
      }
    }
    return *this;
  }
  timer_task(const timer_task&) = delete;
  timer_task& operator=(const timer_task&) = delete;
  ~timer_task() { reset(); }

  /// Calls the function; the task must not be empty.
  void operator()() { ops_->call(buf_); }
  /// Holds a function.
  explicit operator bool() const noexcept { return ops_ != nullptr; }
  /// Destroys the function; the task already counts as empty while that destructor runs.
  void reset() noexcept {
    if (const ops_t* o = std::exchange(ops_, nullptr)) o->destroy(buf_);
  }

 private:
  struct ops_t {
    void (*call)(void* buf);
    void (*relocate)(void* dst, void* src) noexcept;
    void (*destroy)(void* buf) noexcept;
  };
  template <class G>
  static constexpr bool fits_inline = sizeof(G) <= inline_size && alignof(G) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<G>;
  template <class G>
  struct ops_for {
    static G& get(void* buf) noexcept {
      if constexpr (fits_inline<G>)
        return *std::launder(static_cast<G*>(buf));
      else
        return **static_cast<G**>(buf);
    }
    static void call(void* buf) { get(buf)(); }
    static void relocate(void* dst, void* src) noexcept {
      if constexpr (fits_inline<G>) {
        G& from = get(src);
        ::new (dst) G(std::move(from));
        from.~G();
      } else {
        *static_cast<G**>(dst) = *static_cast<G**>(src);
      }
    }
    static void destroy(void* buf) noexcept {
      if constexpr (fits_inline<G>)
        get(buf).~G();
      else
        delete *static_cast<G**>(buf);
    }
    static constexpr ops_t table{&call, &relocate, &destroy};
  };

  alignas(std::max_align_t) unsigned char buf_[inline_size];
  const ops_t* ops_ = nullptr;
};
}  // namespace detail

/// A copyable handle to a scheduled call; copies refer to the same call.
class delayed_call {
 public:
  /// An empty handle.
  delayed_call() noexcept = default;
  /// Another handle to the same call.
  delayed_call(const delayed_call& o) noexcept;
  /// Takes over `o`'s call, leaving `o` empty.
  delayed_call(delayed_call&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  /// Makes this a handle to `o`'s call.
  delayed_call& operator=(const delayed_call& o) noexcept;
  /// Takes over `o`'s call, leaving `o` empty.
  delayed_call& operator=(delayed_call&& o) noexcept;
  ~delayed_call();

  /// Not yet run and not cancelled (false for an empty handle, and once the clock that
  /// scheduled it is destroyed).
  bool active() const noexcept;
  /// Has run, or is running: the flag is set before the function starts.
  bool called() const noexcept;
  /// Was cancelled (also when the clock that scheduled it was destroyed).
  bool cancelled() const noexcept;

  /// Cancels the call; its function is destroyed at once.
  /// Throws already_cancelled_error if cancelled, already_run_error if it ran or is running
  /// (so a call cancelling itself gets already_run_error), std::logic_error for an empty handle.
  void cancel();
  /// Moves the call to now + `from_now` (earlier or later).
  /// Throws as cancel().
  void reset(duration from_now);
  /// Moves the call to time() + `extra`.
  /// Throws as cancel().
  void delay(duration extra);
  /// When it is (or was) due; time_point{} for an empty handle.
  time_point time() const noexcept;

  /// Non-empty.
  explicit operator bool() const noexcept { return node_ != nullptr; }
  /// Both refer to the same call.
  friend bool operator==(const delayed_call& a, const delayed_call& b) noexcept { return a.node_ == b.node_; }

 private:
  friend class detail::timer_queue;
  void swap_with(delayed_call& o) noexcept;
  explicit delayed_call(detail::timer_node* adopted) noexcept : node_(adopted) {}
  detail::timer_node* node_ = nullptr;
};

/// What timer code needs from a clock (Twisted's IReactorTime).
class reactor_time {
 public:
  virtual ~reactor_time() = default;
  /// The current time.
  virtual time_point now() const = 0;
  /// Schedules `fn()` to run `delay` from now.
  virtual delayed_call call_later(duration delay, std::function<void()> fn) = 0;

 protected:
  /// call_later() for a move-only task: the path defer_later() and add_timeout() take, so
  /// that a clock which stores tasks directly (manual_clock, reactor) schedules them without
  /// wrapping them in a std::function (which allocates for most captures, a deferred handle
  /// among them). The default wraps `fn` and calls call_later(), so a clock that overrides
  /// only call_later() works unchanged. Throws what call_later() throws.
  virtual delayed_call call_later_task(duration delay, detail::timer_task&& fn);

 private:
  friend struct detail::time_access;
};

namespace detail {
/// The layers' way in to reactor_time::call_later_task().
struct time_access {
  /// `clock.call_later_task(delay, fn)`.
  static delayed_call call_later(reactor_time& clock, duration delay, timer_task&& fn) {
    return clock.call_later_task(delay, std::move(fn));
  }
};
}  // namespace detail

/// Deterministic time for tests (Twisted's task.Clock): time moves only through advance().
/// Starts at time_point{}.
class manual_clock final : public reactor_time {
 public:
  manual_clock();
  /// Pending calls become cancelled and their functions are destroyed.
  ~manual_clock() override;
  manual_clock(const manual_clock&) = delete;
  manual_clock& operator=(const manual_clock&) = delete;

  /// The current (virtual) time.
  time_point now() const override;
  /// Schedules `fn()` at now() + `delay`.
  /// Throws std::invalid_argument if `delay` is negative or `fn` is empty.
  delayed_call call_later(duration delay, std::function<void()> fn) override;
  /// Moves now() by `d` first, then runs every call that is due, in time order and FIFO on
  /// ties, including calls scheduled meanwhile that fall due. A call may schedule more calls
  /// and may call advance() itself. An exception thrown by a call propagates out of advance()
  /// (as with Twisted's Clock); the calls not yet run stay pending for the next advance().
  void advance(duration d);
  /// advance() by each of `steps` in turn (Twisted's Clock.pump).
  void pump(std::initializer_list<duration> steps);
  /// The active calls, in the order they would run.
  std::vector<delayed_call> pending_calls() const;

 protected:
  /// call_later() without the std::function. Throws as call_later().
  delayed_call call_later_task(duration delay, detail::timer_task&& fn) override;

 private:
  time_point now_{};
  std::unique_ptr<detail::timer_queue> queue_;
};

/// Calls a function every `interval` (Twisted's LoopingCall). Missed intervals are skipped:
/// each next call is at the next interval boundary (counted from start()) strictly in the
/// future. If the function returns an unfired deferred, the next call waits for it.
/// Destroying a running looping_call stops it (as stop()).
class looping_call {
 public:
  /// `fn()` returns void or deferred<void>.
  template <class F>
  looping_call(reactor_time& clock, F&& fn) : looping_call(clock, wrap(std::forward<F>(fn)), false) {}

  /// A looping_call whose `fn(std::size_t count)` receives the number of intervals elapsed
  /// since its previous call (1 when on time; always 1 for interval 0). Twisted's withCount.
  template <class F>
  static looping_call with_count(reactor_time& clock, F&& fn) {
    return looping_call(clock, wrap_counted(std::forward<F>(fn)), true);
  }

  /// Takes over a looping_call; the moved-from one can no longer start.
  looping_call(looping_call&&) noexcept;
  /// Takes over a looping_call, stopping this one first if it runs.
  looping_call& operator=(looping_call&&) noexcept;
  ~looping_call();

  /// Starts calling: at once if `now`, else after one interval. The deferred fires when
  /// stop() is called (after a running or pending call settles) and errbacks with the
  /// failure of the function if it throws or its deferred fails (the loop stops then).
  /// Throws std::invalid_argument for a negative interval, std::logic_error if running (or
  /// moved from).
  deferred<void> start(duration interval, bool now = true);
  /// Stops calling.
  /// Throws std::logic_error if not running.
  void stop();
  /// Restarts the interval count from now, skipping the pending call.
  /// Throws std::logic_error if not running.
  void reset();
  /// Between start() and stop() (or a failure).
  bool running() const noexcept;
  /// The interval given to start().
  duration interval() const noexcept;

 private:
  struct impl;
  using counted_fn = std::function<deferred<void>(std::size_t)>;
  looping_call(reactor_time& clock, counted_fn fn, bool with_count);

  template <class F>
  static counted_fn wrap(F&& fn) {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    static_assert(std::is_void_v<R> || std::is_same_v<std::remove_cvref_t<R>, deferred<void>>,
                  "looping_call: the function must return void or deferred<void>");
    return [f = std::forward<F>(fn)](std::size_t) mutable { return maybe_deferred(f); };
  }
  template <class F>
  static counted_fn wrap_counted(F&& fn) {
    using R = std::invoke_result_t<std::decay_t<F>&, std::size_t>;
    static_assert(std::is_void_v<R> || std::is_same_v<std::remove_cvref_t<R>, deferred<void>>,
                  "looping_call::with_count: the function must return void or deferred<void>");
    return [f = std::forward<F>(fn)](std::size_t n) mutable { return maybe_deferred(f, n); };
  }

  std::shared_ptr<impl> impl_;
};

/// A deferred that fires `delay` from now with `fn()`'s result (a deferred<R> following
/// what fn returns: a value, void, or a deferred); fn's exception errbacks it. cancel()
/// before then removes the timer, never calls fn, and errbacks cancelled_error.
/// Throws whatever clock.call_later() throws (negative delay).
template <class F>
auto defer_later(reactor_time& clock, duration delay, F&& fn) {
  // On a manual_clock or a reactor the chain's block is all this needs (and it is usually a
  // reused one): the timer's function and the canceller are small enough to be stored in the
  // timer and in the chain, and the timer's node is recycled too.
  deferred<void> start;
  auto result = start.add_callback(std::forward<F>(fn));
  delayed_call timer =
      detail::time_access::call_later(clock, delay, detail::timer_task([start]() mutable { start.callback(); }));
  detail::chain_access::set_canceller(start, [timer = std::move(timer)](deferred<void>&) mutable {
    if (timer.active()) timer.cancel();
  });
  return result;
}

/// A deferred<void> that fires `delay` from now; cancel() removes the timer.
/// Throws whatever clock.call_later() throws (negative delay).
deferred<void> defer_later(reactor_time& clock, duration delay);

namespace detail {
/// Owns an add_timeout timer: cancels it when the chain no longer needs it.
struct timeout_guard {
  delayed_call timer;
  explicit timeout_guard(delayed_call t) noexcept : timer(std::move(t)) {}
  timeout_guard(timeout_guard&&) noexcept = default;
  timeout_guard& operator=(timeout_guard&&) = delete;
  ~timeout_guard() {
    if (timer.active()) timer.cancel();
  }
};
}  // namespace detail

template <class T>
deferred<T> deferred<T>::add_timeout(duration timeout, reactor_time& clock) {
  check_add();
  // The timer owns the chain (as in Twisted) so that a timeout fires even if nobody else
  // holds it; the chain owns the timer and cancels it when the result comes first.
  detail::timeout_guard guard(detail::time_access::call_later(
      clock, timeout, detail::timer_task([chain = *this]() mutable { chain.cancel(); })));
  detail::chain_access::tap(*this, [guard = std::move(guard), timeout](detail::result_slot& r) mutable {
    // The timer's "called" flag is set before its function runs, so it tells whether this
    // cancelled_error came from the timeout or from an explicit cancel().
    if (guard.timer.called() && r.kind == detail::result_kind::failure && r.failure_ref().check<cancelled_error>()) {
      r.clear();
      r.set_failure(failure::make(timeout_error(
          "deferred timed out after " +
          std::to_string(std::chrono::duration_cast<std::chrono::duration<double>>(timeout).count()) + " s")));
    }
    if (guard.timer.active()) guard.timer.cancel();
  });
  return *this;
}

}  // namespace twistlet
