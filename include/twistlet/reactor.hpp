// twistlet reactor layer: the event loop. A reactor owns an asio::io_context and, while
// run() is active, lives in its own tasklet: it runs due timers and calls posted from other
// threads, lets every runnable tasklet have a turn, and otherwise sleeps in the kernel until
// the next timer, I/O completion or wake-up. Nothing polls periodically.
#pragma once

#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>
#include <twistlet/time.hpp>

#include <asio/io_context.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace twistlet {

/// A blocking call (block_on, blocking_tasklet, sleep) made in the reactor tasklet, which
/// must never block: nothing would be left to wake it.
struct reactor_blocked_error : std::logic_error {
  using std::logic_error::logic_error;
};

/// What the stall detector caught (see reactor_options::stall_threshold).
struct stall_report {
  /// The tasklet that ran without yielding: tasklet::id(). A timer, I/O or cross-thread
  /// callback runs in the reactor tasklet, so a slow callback is reported as that one.
  std::uint64_t tasklet_id = 0;
  /// Its tasklet::name() ("reactor" for the reactor tasklet, "main" for a main tasklet).
  std::string tasklet_name{};
  /// How long it had run without yielding when it was caught (at least the threshold).
  duration running_for{};
  /// Its frames at that moment, one a line, innermost first; empty if the thread could not
  /// be interrupted to take them.
  std::string backtrace{};
};

/// How a reactor runs.
struct reactor_options {
  /// Threads for defer_to_thread, started on first use.
  std::size_t thread_pool_size = 4;
  /// > 0: also yield to runnable tasklets on this fixed period (the original 2008 design's
  /// busy poll, for those who want it; it costs a wake-up per period). Off by default.
  duration schedule_interval = duration::zero();
  /// > 0: the stall detector. While run() runs, a monitor thread reports, once per stall, any
  /// tasklet of this thread (or pass of the reactor loop with its callbacks) that runs longer
  /// than this without yielding, with its name and backtrace. It wakes up a few times per
  /// threshold while the thread is busy and sleeps while the reactor waits for work, so an
  /// idle process stays idle. Off (zero) by default, and then it costs nothing.
  duration stall_threshold = duration::zero();
  /// Where stall reports go; called on the monitor thread, so it must be thread-safe and
  /// must not touch the reactor's tasklets. Empty: a message on stderr.
  std::function<void(const stall_report&)> on_stall{};
};

namespace detail {
/// A move-only `void()` task, for work that crosses threads and must not be copied there.
class unique_task {
 public:
  unique_task() noexcept = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, unique_task>>>
  unique_task(F&& f) : impl_(std::make_unique<model<std::decay_t<F>>>(std::forward<F>(f))) {}
  void operator()() { impl_->call(); }
  explicit operator bool() const noexcept { return impl_ != nullptr; }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual void call() = 0;
  };
  template <class F>
  struct model final : concept_t {
    explicit model(F&& f) : f_(std::move(f)) {}
    explicit model(const F& f) : f_(f) {}
    void call() override { f_(); }
    F f_;
  };
  std::unique_ptr<concept_t> impl_;
};

class reactor_impl;
}  // namespace detail

class reactor;

namespace detail {
/// What a blocking call needs to know about this thread's reactor, found with one call.
struct reactor_role {
  /// This thread's reactor, or nullptr.
  reactor* r = nullptr;
  /// It is inside run() (or run_until()).
  bool running = false;
  /// The caller is its reactor tasklet (which must never block).
  bool in_reactor_tasklet = false;
};
/// The reactor_role of the calling tasklet `self` (which must be current_tasklet()).
reactor_role current_reactor_role(const tasklet_impl* self) noexcept;
struct reactor_access;
}  // namespace detail

/// The event loop of one thread. It binds itself to the thread that constructs it (a second
/// reactor on the same thread is a std::logic_error) until it is destroyed. All members but
/// call_from_thread() and defer_to_thread()'s pool belong to that thread.
class reactor final : public reactor_time {
 public:
  /// A reactor with the default options, bound to the calling thread.
  /// Throws std::logic_error if this thread already has a reactor.
  reactor();
  /// A reactor with `opts`, bound to the calling thread.
  /// Throws std::logic_error if this thread already has a reactor.
  explicit reactor(reactor_options opts);
  /// Joins the thread pool; calls still queued from other threads are dropped.
  ~reactor() override;
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// The Asio context that I/O objects of this reactor use.
  asio::io_context& context() noexcept;

  /// The current time of std::chrono::steady_clock.
  time_point now() const override;
  /// Runs `fn` in the reactor tasklet after `delay` (>= 0, else std::invalid_argument).
  /// Calls due at the same instant run in the order they were scheduled. A call scheduled by
  /// a running call waits for the next loop iteration, so a call_later(0) chain starves
  /// nothing: calls from other threads run at every iteration, and while timers or tasklets
  /// keep the loop busy, I/O and Asio handlers are polled at least every 32 iterations and
  /// at the first iteration that starts 100 us or more after the last poll (an idle loop
  /// waits for them in the kernel). Calls already due arm no kernel timer. An exception from
  /// `fn` goes to the unhandled-error handler and the loop carries on.
  delayed_call call_later(duration delay, std::function<void()> fn) override;

  /// Thread-safe: runs `fn` in the reactor tasklet, in FIFO order, waking a sleeping reactor.
  /// An exception from `fn` goes to the unhandled-error handler.
  void call_from_thread(std::function<void()> fn);

  /// Runs `fn()` on a pool thread; the returned deferred fires with its value or exception
  /// in the reactor tasklet. `fn` must be safe to run on another thread.
  template <class F>
  auto defer_to_thread(F&& fn);

  /// Starts the reactor tasklet and drives this thread's scheduler until stop(); then keeps
  /// running the remaining runnable tasklets until none is left, and returns. Call it from a
  /// tasklet that is not the reactor tasklet (normally main); it acts as the watchdog of
  /// twistlet::run(). An exception escaping a tasklet stops the reactor and is rethrown here.
  /// Throws std::logic_error if already running or called from another thread.
  void run();
  /// Ends the loop after the current step. Any tasklet of this thread; no-op if not running.
  void stop();
  /// Inside run() (or run_until()), until it returns.
  bool running() const noexcept;
  /// The tasklet running the loop; empty unless running.
  tasklet reactor_tasklet() const noexcept;
  /// True if the calling tasklet is this reactor's tasklet.
  bool in_reactor_tasklet() const noexcept;

  /// Runs the loop, as run() does, until `done()` returns true after some step, or until
  /// nothing could ever make progress (no runnable tasklet, timer, pending I/O, thread-pool
  /// job or keep_alive token): then throws deadlock_error. A stop() before `done()` also
  /// throws deadlock_error (the result can no longer arrive). Used by block_on() in the main
  /// tasklet outside run().
  void run_until(const std::function<bool()>& done);

  /// Thread-safe RAII token: while one exists, the reactor counts as having work that may
  /// still arrive (e.g. a reply expected through call_from_thread), so run_until() waits
  /// instead of declaring a deadlock. It may be moved to and dropped on any thread, but must
  /// not outlive its reactor.
  class keep_alive {
   public:
    /// A token for `r`.
    explicit keep_alive(reactor& r);
    /// Takes over `other`'s token; `other` holds none any more.
    keep_alive(keep_alive&& other) noexcept;
    keep_alive& operator=(keep_alive&&) = delete;
    /// Gives the token up.
    ~keep_alive();

   private:
    std::shared_ptr<void> guard_;
  };

  /// This thread's reactor, or nullptr.
  static reactor* current() noexcept;

  /// For the layers above: queues `task` from any thread as call_from_thread() does.
  void post_from_thread(detail::unique_task task);
  /// For the layers above: runs `job` on a pool thread.
  void post_to_pool(detail::unique_task job);

 protected:
  /// call_later() without the std::function. Throws as call_later().
  delayed_call call_later_task(duration delay, detail::timer_task&& fn) override;

 private:
  friend struct detail::reactor_access;
  std::unique_ptr<detail::reactor_impl> impl_;
};

template <class F>
auto reactor::defer_to_thread(F&& fn) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  // The deferred stays on this thread: the pool only ever sees the completion record, which
  // comes back through call_from_thread to fire it.
  struct completion {
    deferred<R> d;
    std::optional<outcome<R>> result;
  };
  auto c = std::make_unique<completion>();
  deferred<R> d = c->d;
  post_to_pool([this, c = std::move(c), fn = std::forward<F>(fn)]() mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        c->result.emplace();
      } else {
        c->result.emplace(fn());
      }
    } catch (...) {
      c->result.emplace(failure(std::current_exception()));
    }
    post_from_thread([c = std::move(c)]() mutable {
      if (c->result->has_value()) {
        if constexpr (std::is_void_v<R>)
          c->d.callback();
        else
          c->d.callback(std::move(c->result->value()));
      } else {
        c->d.errback(c->result->error());
      }
    });
  });
  return d;
}

}  // namespace twistlet
